//! Pages of long lists: `limit` (1–100, default 20) and `cursor` (the `nextCursor` a page
//! returned: the id its last item had), newest first.

use serde::Deserialize;

use crate::error::ApiError;

/// The `limit` and `cursor` query parameters of a paginated list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size (1–100, default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// (cursor, limit), or 400 `invalid_input`.
    pub fn parse(&self) -> Result<(Option<i64>, i64), ApiError> {
        parse_pagination(self.limit.as_deref(), self.cursor.as_deref())
    }
}

/// Parses `limit` and `cursor` (a positive id, as `nextCursor` returns it).
pub fn parse_pagination(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Option<i64>, i64), ApiError> {
    let limit = match limit {
        None => 20,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ApiError::invalid("limit must be a number from 1 to 100"))?,
    };
    let cursor = match cursor {
        None => None,
        // Exactly as `nextCursor` spells it: digits, no sign, no leading zero.
        Some(c) => Some(
            Some(c)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()) && !c.starts_with('0'))
                .and_then(|c| c.parse::<i64>().ok())
                .filter(|c| *c > 0)
                .ok_or_else(|| ApiError::invalid("cursor is not one this API returned"))?,
        ),
    };
    Ok((cursor, limit))
}

/// Properties of the pagination parameters: any input is a page or a 400, and every cursor
/// the API returns (a positive id) is accepted as it was printed.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{hostile_string, refusal};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn returned_cursors_round_trip(id in 1i64..=i64::MAX, limit in 1i64..=100) {
            let (cursor, l) = parse_pagination(Some(&limit.to_string()), Some(&id.to_string())).unwrap();
            prop_assert_eq!((cursor, l), (Some(id), limit));
        }

        #[test]
        fn any_query_is_a_page_or_invalid_input(
            limit in prop::option::of(prop_oneof![hostile_string(12), "-?[0-9]{1,21}", "\\+[0-9]{1,3}"]),
            cursor in prop::option::of(prop_oneof![hostile_string(12), "-?[0-9]{1,21}", "0[0-9]{1,4}", "\\+[0-9]{1,4}"]),
        ) {
            match parse_pagination(limit.as_deref(), cursor.as_deref()) {
                Ok((c, l)) => {
                    prop_assert!((1..=100).contains(&l));
                    if let Some(c) = c {
                        prop_assert!(c > 0);
                        let printed = c.to_string();
                        prop_assert_eq!(cursor.as_deref(), Some(printed.as_str()));
                    } else {
                        prop_assert!(cursor.is_none());
                    }
                    if limit.is_none() {
                        prop_assert_eq!(l, 20);
                    }
                }
                Err(e) => prop_assert_eq!(refusal(&e), (400, "invalid_input")),
            }
        }
    }
}
