//! ICP 2's console API: GraphQL at `/graphql` (`../shared/protocol/GRAPHQL.md`,
//! revision R-NEW), over the same domain functions as the REST API.
//!
//! This module knows no sockets: the HTTP layer (`http::api::graphql`)
//! decodes the request with [`decode_post`] / [`decode_get`], authenticates
//! the caller and calls [`Gql::execute`], which answers a status and a JSON
//! body exactly as the reference does (§1.2, §1.3): 400 with `{"errors"}`
//! for a document that does not parse or validate, 200 with `{"errors",
//! "data"}` once it executes.
//!
//! Execution is juniper's synchronous executor on the request worker.
//! Resolvers read SQLite and in-memory state; MI's Management API is never
//! called from here (`mi::control` answers from its cache and fetches on
//! its pool), so no resolver waits on a runtime.
//!
//! Limits the reference lacks (§1.2 "no query-depth limit"): nesting depth,
//! tokens and fields per document are bounded before anything executes, and
//! every list a request returns is charged against an item budget, so a
//! hostile document gets a GraphQL error, never a busy worker.
//!
//! - `schema.rs`: the types of GRAPHQL.md §5.
//! - `query.rs`, `mutation.rs`: the root fields of §6.14 and their rules.
//! - `token.rs`: the console token `/auth/login` issues.

pub mod mutation;
pub mod query;
pub mod schema;
pub mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use juniper::{EmptySubscription, FieldError, GraphQLError, OperationType, RootNode};
use serde_json::Value;

use crate::access::Principal;
use crate::catalog::{EnvironmentInfo, IntegrationInfo, ProjectInfo};
use crate::error::Error;
use crate::time::Millis;

/// Deepest nesting a document may have (the introspection query needs 15).
pub const MAX_DEPTH: usize = 24;
/// Most tokens a document may have (the largest console document has ~400).
pub const MAX_TOKENS: usize = 10_000;
/// Most fields an operation may expand to, fragments counted per spread.
pub const MAX_FIELDS: usize = 2_000;
/// Most list items one request may return in all (every page, every
/// alias): ten 500-item pages of runtimes, or the whole of a large catalog.
pub const MAX_ITEMS: usize = 20_000;
/// Most root fields an operation may ask for, aliases and fragments
/// counted (the console's documents ask for one to three): each may read a
/// whole list before paging it, so their number bounds a request's work.
pub const MAX_ROOT_FIELDS: usize = 30;
/// The message of every authentication failure (§1.4).
pub const AUTH_FAILED: &str =
    "Required authentication information is either missing or not valid for the resource.";

/// The schema: ICP's Query and Mutation, no subscriptions (§1.4).
pub type Schema = RootNode<query::Query, mutation::Mutation, EmptySubscription<Ctx>>;

/// What resolvers work with, shared by all requests.
pub struct Deps {
    pub store: Arc<crate::store::Store>,
    pub liveness: Arc<crate::liveness::Liveness>,
    pub commands: Arc<crate::commands::Commands>,
    pub mi: Arc<crate::mi::control::MiControl>,
    pub master_key: Arc<crate::master_key::MasterKey>,
    pub events: Arc<crate::events::Events>,
}

/// One request's context: the caller, the time, and what it has used.
pub struct Ctx {
    pub deps: Arc<Deps>,
    pub principal: Principal,
    pub now: Millis,
    /// List items returned so far (see [`MAX_ITEMS`]).
    items: Budget,
    /// Catalog rows read during this request, by id (queries only: a
    /// mutation's later fields must see what its earlier fields changed).
    cache: Option<Mutex<Lookups>>,
    /// Write requests by (user, requestId): the MI operation each started (§4.7).
    request_ids: Arc<Mutex<RequestIds>>,
}

impl juniper::Context for Ctx {}

#[derive(Default)]
struct Lookups {
    environments: HashMap<i64, Option<EnvironmentInfo>>,
    projects: HashMap<i64, Option<ProjectInfo>>,
    integrations: HashMap<i64, Option<IntegrationInfo>>,
}

/// `requestId` → the operation a write started, kept for [`REQUEST_ID_TTL`].
#[derive(Default)]
pub(crate) struct RequestIds {
    by_key: HashMap<(i64, String), (String, Millis)>,
}

/// How long a write's `requestId` is remembered (the console gives up after 130 s).
const REQUEST_ID_TTL: Millis = 10 * 60 * 1000;
/// Most remembered `requestId`s (oldest forgotten first).
const MAX_REQUEST_IDS: usize = 10_000;

impl RequestIds {
    pub(crate) fn get(&self, user: i64, request_id: &str) -> Option<String> {
        self.by_key
            .get(&(user, request_id.to_string()))
            .map(|(op, _)| op.clone())
    }

    pub(crate) fn put(&mut self, user: i64, request_id: &str, op: String, now: Millis) {
        self.by_key.retain(|_, (_, at)| now - *at < REQUEST_ID_TTL);
        if self.by_key.len() >= MAX_REQUEST_IDS {
            if let Some(oldest) = self
                .by_key
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                self.by_key.remove(&oldest);
            }
        }
        self.by_key
            .insert((user, request_id.to_string()), (op, now));
    }
}

/// A resolver's result: its value or a GraphQL error with a message.
pub type Res<T> = Result<T, FieldError>;

/// A GraphQL error with `message` (the reference's texts are part of its contract, §4.6).
pub fn fail(message: impl std::fmt::Display) -> FieldError {
    FieldError::new(message.to_string(), juniper::Value::null())
}

/// An icpd error as a GraphQL error: its message, which says what to do.
/// Storage faults keep their detail out of the answer, as the REST API does.
pub fn from_error(e: Error) -> FieldError {
    if e.is_internal() {
        log::error!("graphql resolver failed: {e}");
        return fail("icpd could not complete this request (an internal error, logged on the server); try again");
    }
    fail(e.to_string())
}

/// The list items a request may still return.
#[derive(Default)]
struct Budget(AtomicUsize);

impl Budget {
    /// Spends `n` items; an error once more than [`MAX_ITEMS`] were asked for.
    fn charge(&self, n: usize) -> Res<()> {
        let used = self.0.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if used > MAX_ITEMS {
            return Err(fail(format!(
                "this request asks for more than {MAX_ITEMS} list items in all; ask for pages (pagination: {{limit, offset}}) or split it into several requests"
            )));
        }
        Ok(())
    }
}

impl Ctx {
    /// Charges `n` list items to this request; an error once the budget is spent.
    pub fn charge(&self, n: usize) -> Res<()> {
        self.items.charge(n)
    }

    /// A catalog row by id, read once per request (`table` picks the cache).
    fn cached<T: Clone>(
        &self,
        id: i64,
        table: fn(&mut Lookups) -> &mut HashMap<i64, Option<T>>,
        read: impl FnOnce(&crate::store::Tx) -> crate::error::Result<Option<T>>,
    ) -> Res<Option<T>> {
        if let Some(hit) = self
            .cache
            .as_ref()
            .and_then(|c| table(&mut lock(c)).get(&id).cloned())
        {
            return Ok(hit);
        }
        let row = self.deps.store.read(read).map_err(from_error)?;
        if let Some(c) = &self.cache {
            table(&mut lock(c)).insert(id, row.clone());
        }
        Ok(row)
    }

    /// The environment with id `id`, read once per request.
    pub fn environment(&self, id: i64) -> Res<Option<EnvironmentInfo>> {
        self.cached(id, |l| &mut l.environments, |tx| tx.environment_by_id(id))
    }

    /// The project with id `id`, read once per request.
    pub fn project(&self, id: i64) -> Res<Option<ProjectInfo>> {
        self.cached(id, |l| &mut l.projects, |tx| tx.project_by_id(id))
    }

    /// The integration with id `id`, read once per request.
    pub fn integration(&self, id: i64) -> Res<Option<IntegrationInfo>> {
        self.cached(id, |l| &mut l.integrations, |tx| tx.integration_by_id(id))
    }

    pub(crate) fn request_ids(&self) -> std::sync::MutexGuard<'_, RequestIds> {
        lock(&self.request_ids)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ICP permission names (§3) the caller holds somewhere, for the login
/// answer and the token's `scope`: icpd's permissions in ICP's vocabulary.
pub fn icp_permissions(p: &Principal) -> Vec<&'static str> {
    use crate::access::Permission as P;
    let mut out = Vec::new();
    let mut add = |names: &[&'static str]| {
        for n in names {
            if !out.contains(n) {
                out.push(*n);
            }
        }
    };
    for perm in P::ALL {
        if !p.has_anywhere(perm) {
            continue;
        }
        add(match perm {
            P::IntegrationView => &["integration_mgt:view"],
            P::IntegrationEdit => &["integration_mgt:edit"],
            P::IntegrationManage => &["integration_mgt:manage"],
            P::EnvironmentManage => &["environment_mgt:manage"],
            P::EnvironmentManageNonProduction => &["environment_mgt:manage_nonprod"],
            P::ProjectView => &["project_mgt:view"],
            P::ProjectEdit => &["project_mgt:edit"],
            P::ProjectManage => &["project_mgt:manage"],
            P::ObservabilityView => &[
                "observability_mgt:view_logs",
                "observability_mgt:view_insights",
            ],
            P::UserManage => &[
                "user_mgt:manage_users",
                "user_mgt:update_users",
                "user_mgt:manage_groups",
                "user_mgt:manage_roles",
                "user_mgt:update_group_roles",
            ],
        });
    }
    out
}

/// A decoded GraphQL request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub query: String,
    pub variables: Option<serde_json::Map<String, Value>>,
    pub operation_name: Option<String>,
}

/// What to answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The operation was a mutation that executed (the HTTP layer audits
    /// it): each root field as `name(idArgument: value, ...)`.
    pub mutation: Option<Vec<String>>,
}

impl Reply {
    /// `{"errors":[{"message": message}]}` with `status`.
    pub fn errors(status: u16, message: &str) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(&serde_json::json!({"errors": [{"message": message}]}))
                .unwrap_or_default(),
            mutation: None,
        }
    }

    /// The reference's bare-string 400s (§1.2), as JSON strings.
    fn bare(message: &str) -> Reply {
        Reply {
            status: 400,
            body: serde_json::to_vec(message).unwrap_or_default(),
            mutation: None,
        }
    }
}

/// Decodes a POST: `application/json` (parameters such as `charset` allowed)
/// with `{"query", "variables"?, "operationName"?}`.
pub fn decode_post(content_type: Option<&str>, body: &[u8]) -> Result<Request, Reply> {
    let mime = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/graphql" {
        return Err(Reply::bare(
            "Content-Type 'application/graphql' is not yet supported",
        ));
    }
    if mime != "application/json" {
        return Err(Reply::bare("Invalid 'Content-type' received"));
    }
    let Ok(Value::Object(mut o)) = serde_json::from_slice::<Value>(body) else {
        return Err(Reply::bare("Invalid request body"));
    };
    let query = match o.remove("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q,
        _ => return Err(Reply::bare("Invalid request body")),
    };
    let variables = match o.remove("variables") {
        None | Some(Value::Null) => None,
        Some(Value::Object(v)) => Some(v),
        Some(_) => return Err(Reply::bare("Invalid request body")),
    };
    let operation_name = match o.remove("operationName") {
        Some(Value::String(n)) if !n.is_empty() => Some(n),
        _ => None,
    };
    Ok(Request {
        query,
        variables,
        operation_name,
    })
}

/// Decodes a GET's query parameters (already percent-decoded).
pub fn decode_get(param: impl Fn(&str) -> Option<String>) -> Result<Request, Reply> {
    let query = param("query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| Reply::bare("Query not found"))?;
    let variables = match param("variables").filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(v) => match serde_json::from_str::<Value>(&v) {
            Ok(Value::Object(o)) => Some(o),
            Ok(Value::Null) => None,
            _ => {
                return Err(Reply::bare(
                    "Invalid format in request parameter: variables",
                ))
            }
        },
    };
    Ok(Request {
        query,
        variables,
        operation_name: param("operationName").filter(|n| !n.is_empty()),
    })
}

/// The GraphQL service: the schema and what outlives a request.
pub struct Gql {
    schema: Schema,
    deps: Arc<Deps>,
    request_ids: Arc<Mutex<RequestIds>>,
}

impl Gql {
    pub fn new(deps: Deps) -> Gql {
        Gql {
            schema: schema_root(),
            deps: Arc::new(deps),
            request_ids: Arc::default(),
        }
    }

    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Runs `req` for `principal`. `allow_mutation` is false for GET.
    pub fn execute(
        &self,
        principal: Principal,
        req: &Request,
        allow_mutation: bool,
        now: Millis,
    ) -> Reply {
        let variables: juniper::Variables = match &req.variables {
            None => juniper::Variables::new(),
            Some(v) => match v
                .iter()
                .map(|(k, v)| Ok((k.clone(), serde_json::from_value(v.clone())?)))
                .collect::<Result<_, serde_json::Error>>()
            {
                Ok(v) => v,
                Err(_) => return Reply::bare("Invalid request body"),
            },
        };
        let op = match juniper::ValidatedOperation::new(
            &req.query,
            req.operation_name.as_deref(),
            &self.schema,
        ) {
            Ok(op) => op,
            Err(e) => return document_error(&e),
        };
        let roots = root_fields(
            &req.query,
            req.operation_name.as_deref(),
            &self.schema.schema,
            req.variables.as_ref(),
        );
        if roots.len() > MAX_ROOT_FIELDS {
            return Reply::errors(
                400,
                &format!(
                    "this document asks for {} root fields; icpd answers at most {MAX_ROOT_FIELDS} per request: split it into several requests",
                    roots.len()
                ),
            );
        }
        let is_mutation = op.operation_type() == OperationType::Mutation;
        if is_mutation && !allow_mutation {
            return Reply::errors(
                400,
                "mutations are not accepted over GET; send them with POST",
            );
        }
        if op.operation_type() == OperationType::Subscription {
            return Reply::errors(400, "this schema has no subscriptions");
        }
        let ctx = Ctx {
            deps: self.deps.clone(),
            principal,
            now,
            items: Budget::default(),
            cache: (!is_mutation).then(Mutex::default),
            request_ids: self.request_ids.clone(),
        };
        match op.execute_sync(&variables, &ctx) {
            Err(e) => document_error(&e),
            Ok((data, errors)) => {
                // The audit names the fields the document asked for (not
                // their aliases) with their id arguments, whatever happened.
                let fields = is_mutation.then(|| roots.clone());
                // juniper's value keeps the document's field order (a
                // serde_json::Value would sort the keys).
                let data = serde_json::to_string(&data).unwrap_or_else(|_| "null".into());
                // The reference writes `errors` before `data` (§1.3).
                let body = if errors.is_empty() {
                    format!(r#"{{"data":{data}}}"#)
                } else {
                    let errors = serde_json::to_string(&errors).unwrap_or_else(|_| "[]".into());
                    format!(r#"{{"errors":{errors},"data":{data}}}"#)
                };
                Reply {
                    status: 200,
                    body: body.into_bytes(),
                    mutation: fields,
                }
            }
        }
    }
}

fn schema_root() -> Schema {
    Schema::new(
        query::Query,
        mutation::Mutation,
        EmptySubscription::<Ctx>::new(),
    )
    .limit_depth(MAX_DEPTH)
    .limit_tokens(MAX_TOKENS)
    .limit_fields(MAX_FIELDS)
}

/// The root fields of the operation `req` runs, fragments expanded, as
/// `name(argument: value, ...)` with only the arguments that name things
/// (`…Id`, `keyId`): for the item limit and the audit, which never sees a
/// password or key. The document has already been validated.
fn root_fields(
    query: &str,
    operation_name: Option<&str>,
    schema: &juniper::SchemaType<juniper::DefaultScalarValue>,
    variables: Option<&serde_json::Map<String, Value>>,
) -> Vec<String> {
    use juniper::{Definition, Selection};
    let Ok(doc) = juniper::parser::parse_document_source(query, schema) else {
        return Vec::new();
    };
    let mut fragments = HashMap::new();
    let mut operation = None;
    for d in &doc {
        match d {
            Definition::Fragment(f) => {
                fragments.insert(f.item.name.item, &f.item.selection_set);
            }
            Definition::Operation(o) => {
                let name = o.item.name.as_ref().map(|n| n.item);
                if operation_name.is_none() || name == operation_name {
                    operation.get_or_insert(&o.item.selection_set);
                }
            }
        }
    }
    let value = |v: &juniper::InputValue| -> Option<String> {
        match v {
            juniper::InputValue::Variable(name) => variables
                .and_then(|vars| vars.get(name))
                .and_then(Value::as_str)
                .map(str::to_string),
            other => other
                .as_scalar()
                .and_then(|s| juniper::ScalarValue::try_as_str(s))
                .map(str::to_string),
        }
    };
    /// Appends each root field as `name(idArgument: value, ...)`.
    fn walk(
        sels: &[Selection<'_, juniper::DefaultScalarValue>],
        fragments: &HashMap<&str, &Vec<Selection<'_, juniper::DefaultScalarValue>>>,
        depth: usize,
        value: &dyn Fn(&juniper::InputValue) -> Option<String>,
        out: &mut Vec<String>,
    ) {
        for s in sels {
            match s {
                Selection::Field(f) => {
                    let ids: Vec<String> = f
                        .item
                        .arguments
                        .iter()
                        .flat_map(|a| a.item.items.iter())
                        .filter(|(n, _)| n.item.ends_with("Id") || n.item == "keyId")
                        .filter_map(|(n, v)| {
                            value(&v.item).map(|v| {
                                format!("{}: {}", n.item, v.chars().take(80).collect::<String>())
                            })
                        })
                        .collect();
                    out.push(if ids.is_empty() {
                        f.item.name.item.to_string()
                    } else {
                        format!("{}({})", f.item.name.item, ids.join(", "))
                    });
                }
                Selection::InlineFragment(i) if depth < 8 => {
                    walk(&i.item.selection_set, fragments, depth + 1, value, out)
                }
                Selection::FragmentSpread(f) if depth < 8 => {
                    if let Some(set) = fragments.get(f.item.name.item) {
                        walk(set, fragments, depth + 1, value, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut fields = Vec::new();
    if let Some(sels) = operation {
        walk(sels, &fragments, 0, &value, &mut fields);
    }
    fields
}

/// A document that does not parse, validate or match an operation: 400 with
/// `{"errors": [{"message", "locations"}]}` and no `data`.
fn document_error(e: &GraphQLError) -> Reply {
    let mut errors = serde_json::to_value(e).unwrap_or(Value::Null);
    if !errors.is_array() {
        errors = serde_json::json!([{ "message": e.to_string() }]);
    }
    if let GraphQLError::ParseError(p) = e {
        use juniper::parser::ParseError as P;
        if matches!(
            p.item,
            P::DepthLimitExceeded(_) | P::TokenLimitExceeded(_) | P::FieldLimitExceeded(_)
        ) {
            if let Some(first) = errors.get_mut(0).and_then(Value::as_object_mut) {
                let m = first
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                first.insert(
                    "message".into(),
                    Value::String(format!(
                        "{m}: icpd bounds every document (depth {MAX_DEPTH}, {MAX_TOKENS} tokens, {MAX_FIELDS} fields); split it into smaller requests"
                    )),
                );
            }
        }
    }
    Reply {
        status: 400,
        body: serde_json::to_vec(&serde_json::json!({ "errors": errors })).unwrap_or_default(),
        mutation: None,
    }
}

/// The schema as SDL, from the same introspection clients see (for tools
/// and the console page; tests compare it with GRAPHQL.md).
pub fn introspection_query() -> &'static str {
    INTROSPECTION
}

const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } types { kind name description fields(includeDeprecated: true) { name description args { name description type { ...TypeRef } defaultValue } type { ...TypeRef } } inputFields { name description type { ...TypeRef } defaultValue } enumValues(includeDeprecated: true) { name description } } } } fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } }";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_bodies_decode_as_the_reference_accepts_them() {
        let ok = decode_post(
            Some("application/json; charset=utf-8"),
            br#"{"query":"{ systemInfo { version } }","variables":null}"#,
        )
        .unwrap();
        assert_eq!(ok.query, "{ systemInfo { version } }");
        assert_eq!(ok.variables, None);
        let bare = |r: Result<Request, Reply>| {
            let r = r.unwrap_err();
            assert_eq!(r.status, 400);
            serde_json::from_slice::<Value>(&r.body).unwrap()
        };
        assert_eq!(
            bare(decode_post(Some("application/graphql"), b"{ a }")),
            "Content-Type 'application/graphql' is not yet supported"
        );
        for body in [
            &b"nope"[..],
            b"[]",
            br#"{"query":""}"#,
            br#"{"query":"{a}","variables":[1]}"#,
        ] {
            assert_eq!(
                bare(decode_post(Some("application/json"), body)),
                "Invalid request body"
            );
        }
        assert_eq!(bare(decode_get(|_| None)), "Query not found");
        assert_eq!(
            bare(decode_get(|k| match k {
                "query" => Some("{a}".into()),
                "variables" => Some("[1]".into()),
                _ => None,
            })),
            "Invalid format in request parameter: variables"
        );
    }

    #[test]
    fn the_item_budget_refuses_past_its_limit_and_says_what_to_do() {
        let b = Budget::default();
        assert!(b.charge(MAX_ITEMS - 1).is_ok());
        assert!(b.charge(1).is_ok());
        let e = b.charge(1).unwrap_err();
        assert!(e.message().contains("pagination"), "{}", e.message());
        assert!(Budget::default().charge(usize::MAX).is_err());
    }

    #[test]
    fn request_ids_expire_and_are_bounded() {
        let mut ids = RequestIds::default();
        ids.put(1, "a", "op-1".into(), 0);
        assert_eq!(ids.get(1, "a").as_deref(), Some("op-1"));
        assert_eq!(ids.get(2, "a"), None);
        ids.put(1, "b", "op-2".into(), REQUEST_ID_TTL + 1);
        assert_eq!(ids.get(1, "a"), None);
        for n in 0..MAX_REQUEST_IDS + 5 {
            ids.put(1, &n.to_string(), "op".into(), REQUEST_ID_TTL + 2);
        }
        assert!(ids.by_key.len() <= MAX_REQUEST_IDS);
    }
}
