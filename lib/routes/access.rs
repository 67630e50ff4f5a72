//! Who may sign in, and as what: the access rules admins manage (the first one comes from
//! the command line with database access, `atlas-hub admin access grant`).

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::audit::{self, Actor};
use crate::domain::ids::Slug;
use crate::domain::sessions::{self, Role, Rule, RuleKind};
use crate::error::ApiError;
use crate::http::extract::{Admin, Json, NoBody, NoQuery, Path, Query};
use crate::http::{ApiResult, quoted, respond};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct RuleList {
    rules: Vec<Rule>,
}

/// Every access rule, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/access",
    operation_id = "listAccessRules",
    tag = "admin",
    summary = "Who may sign in, and with which role.",
    responses((status = 200, description = "The rules.", body = RuleList)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn list(_: Admin, State(state): State<Arc<AppState>>, _: Query<NoQuery>) -> ApiResult {
    let conn = state.db.conn().await?;
    let rules = sessions::rules(&conn).await?;
    respond::json(StatusCode::OK, &RuleList { rules })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantBody {
    /// `github_user`, `github_org`, `github_team` (`org/team`), `microsoft_tenant`,
    /// `microsoft_group` (`tenant/group`), `oidc_subject` (`issuer subject`), `oidc_email`.
    kind: RuleKind,
    /// Who the rule names, as the kind spells it.
    #[schema(min_length = 1, max_length = 300)]
    value: String,
    role: Role,
    /// Releasers: the products they may move (default every product, `["*"]`).
    products: Option<Vec<String>>,
}

/// Grants a role to whoever the rule names; the same rule again updates its products.
#[utoipa::path(
    post,
    path = "/api/v1/admin/access",
    operation_id = "grantAccess",
    tag = "admin",
    summary = "Grant a role by rule.",
    request_body = GrantBody,
    responses((status = 201, description = "The rule.", body = Rule)),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([413, 415]))),
)]
pub async fn grant(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
    Json(body): Json<GrantBody>,
) -> ApiResult {
    if body.kind == RuleKind::LocalUser {
        return Err(ApiError::invalid(
            "local_user rules belong to the local developer sign-in of atlas-hub serve",
        ));
    }
    let products = body.products.unwrap_or_default();
    if products.len() > 100 {
        return Err(ApiError::invalid("products lists at most 100 products"));
    }
    for p in &products {
        if p != "*" {
            Slug::parse("products", p)?;
        }
    }
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await?;
    let actor = Actor::from(&principal);
    let id = sessions::grant(
        &tx,
        body.kind,
        &body.value,
        body.role,
        &products,
        &actor.name,
    )
    .await?;
    let rule = sessions::rules(&tx)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::internal(format!("access rule {id} vanished")))?;
    let detail = json!({"kind": rule.kind, "value": rule.value, "role": rule.role, "products": rule.products});
    audit::commit(
        tx,
        &actor,
        "access.grant",
        &format!("access_rule:{id}"),
        detail,
    )
    .await?;
    respond::json(StatusCode::CREATED, &rule)
}

/// `{id}` of an access rule.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RulePath {
    id: String,
}

/// Removes a rule: whoever only it let in loses their access at their next request.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/access/{id}",
    operation_id = "revokeAccess",
    tag = "admin",
    summary = "Remove an access rule.",
    params(RulePath),
    responses((status = 204, description = "Removed.")),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([413, 415]))),
)]
pub async fn revoke(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    Path(path): Path<RulePath>,
    _: Query<NoQuery>,
    _: NoBody,
) -> ApiResult {
    let not_found = || ApiError::not_found(format!("no access rule {}", quoted(&path.id)));
    let id: i64 = path.id.parse().map_err(|_| not_found())?;
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await?;
    if !sessions::revoke_rule(&tx, id).await? {
        return Err(not_found());
    }
    let subject = format!("access_rule:{id}");
    audit::commit(
        tx,
        &Actor::from(&principal),
        "access.revoke",
        &subject,
        json!({}),
    )
    .await?;
    Ok(respond::no_content())
}
