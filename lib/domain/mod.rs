//! The domain: identifiers, deploy tokens, products, releases, channels, audit.
