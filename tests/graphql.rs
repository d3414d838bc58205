//! ICP 2's GraphQL API (`../shared/protocol/GRAPHQL.md`) on a real server:
//! the schema against the document's SDL, the console's documents against
//! the document's types (golden shapes), the login/refresh/revoke flow,
//! permissions per resolver, and the limits.
//!
//! The contract is read from GRAPHQL.md itself at test time, so a change of
//! the document shows up here as a failing diff, not as a silent drift.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::harness::*;

// ---- the contract, parsed from GRAPHQL.md ----------------------------------------------

fn graphql_md() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for p in [
        "../shared/protocol/GRAPHQL.md",
        "../../shared/protocol/GRAPHQL.md",
    ] {
        if let Ok(t) = std::fs::read_to_string(root.join(p)) {
            return t;
        }
    }
    panic!("GRAPHQL.md not found next to the repository (../shared/protocol)");
}

/// One field (or input field / enum value): its arguments and type, as SDL text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FieldSig {
    name: String,
    /// `name: Type[ = default]`, in order.
    args: Vec<String>,
    ty: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TypeDef {
    kind: String,
    fields: BTreeMap<String, FieldSig>,
}

/// Splits `a: T, b: [U!]! = 1` at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut cur, mut in_str) = (0, String::new(), false);
    for c in s.chars() {
        match c {
            '"' => in_str = !in_str,
            '[' | '(' | '{' if !in_str => depth += 1,
            ']' | ')' | '}' if !in_str => depth -= 1,
            ',' if depth == 0 && !in_str => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out.into_iter()
        .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Every `type`/`input`/`enum` definition of the document's ```graphql blocks.
fn doc_schema() -> BTreeMap<String, TypeDef> {
    let md = graphql_md();
    let mut types = BTreeMap::new();
    let mut in_block = false;
    let mut current: Option<(String, TypeDef)> = None;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            in_block = line.trim() == "```graphql";
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some((name, def)) = current.as_mut() {
            if line == "}" {
                let (name, def) = (name.clone(), def.clone());
                types.insert(name, def);
                current = None;
                continue;
            }
            if def.kind == "enum" {
                def.fields.insert(
                    line.to_string(),
                    FieldSig {
                        name: line.to_string(),
                        args: Vec::new(),
                        ty: String::new(),
                    },
                );
                continue;
            }
            let (head, ty) = line.rsplit_once("):").map_or_else(
                || {
                    let (n, t) = line.split_once(':').unwrap();
                    (n.to_string(), t.trim().to_string())
                },
                |(h, t)| (format!("{h})"), t.trim().to_string()),
            );
            let (name, args) = match head.split_once('(') {
                Some((n, a)) => (n.trim().to_string(), split_args(a.trim_end_matches(')'))),
                None => (head.trim().to_string(), Vec::new()),
            };
            // An input field's default value stays part of its type text.
            def.fields.insert(name.clone(), FieldSig { name, args, ty });
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [kind @ ("type" | "input" | "enum"), name, "{"] = words[..] {
            current = Some((
                name.to_string(),
                TypeDef {
                    kind: kind.to_string(),
                    fields: BTreeMap::new(),
                },
            ));
        }
    }
    types
}

// ---- the served schema, from introspection ------------------------------------------------

const INTROSPECTION: &str = "{ __schema { types { kind name fields { name args { name type { ...T } defaultValue } type { ...T } } inputFields { name type { ...T } defaultValue } enumValues { name } } } } fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

fn type_text(t: &Value) -> String {
    match t["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_text(&t["ofType"])),
        Some("LIST") => format!("[{}]", type_text(&t["ofType"])),
        _ => t["name"].as_str().unwrap_or("?").to_string(),
    }
}

fn served_schema(data: &Value) -> BTreeMap<String, TypeDef> {
    let mut out = BTreeMap::new();
    for t in data["__schema"]["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap().to_string();
        let kind = t["kind"].as_str().unwrap();
        if name.starts_with("__") || kind == "SCALAR" {
            continue;
        }
        let mut fields = BTreeMap::new();
        let (kind, members) = match kind {
            "OBJECT" => ("type", &t["fields"]),
            "INPUT_OBJECT" => ("input", &t["inputFields"]),
            "ENUM" => ("enum", &t["enumValues"]),
            other => panic!("unexpected kind {other} for {name}"),
        };
        for f in members.as_array().unwrap() {
            let fname = f["name"].as_str().unwrap().to_string();
            let sig = match kind {
                "enum" => FieldSig {
                    name: fname.clone(),
                    args: Vec::new(),
                    ty: String::new(),
                },
                "input" => FieldSig {
                    name: fname.clone(),
                    args: Vec::new(),
                    ty: with_default(type_text(&f["type"]), &f["defaultValue"]),
                },
                _ => FieldSig {
                    name: fname.clone(),
                    args: f["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| {
                            with_default(
                                format!(
                                    "{}: {}",
                                    a["name"].as_str().unwrap(),
                                    type_text(&a["type"])
                                ),
                                &a["defaultValue"],
                            )
                        })
                        .collect(),
                    ty: type_text(&f["type"]),
                },
            };
            fields.insert(fname, sig);
        }
        out.insert(
            name,
            TypeDef {
                kind: kind.into(),
                fields,
            },
        );
    }
    out
}

fn with_default(text: String, default: &Value) -> String {
    match default.as_str() {
        Some(d) => format!("{text} = {d}"),
        None => text,
    }
}

// ---- helpers ---------------------------------------------------------------------

/// Signs in through ICP's login service; the login body.
fn icp_login(server: &TestServer, user: &str) -> Value {
    let r = server.icp_login(user, TEST_PASSWORD);
    assert_eq!(r.status, 200, "login {user}: {}", r.json());
    r.json()
}

/// A console client: the JWT from `/auth/login`.
struct Gql {
    client: icpd::http::client::Client,
    token: String,
}

impl Gql {
    fn new(server: &TestServer, user: &str, role: Option<&str>) -> Gql {
        server.create_user(user, role);
        let token = icp_login(server, user)["token"]
            .as_str()
            .unwrap()
            .to_string();
        Gql {
            client: server.management_client(),
            token,
        }
    }

    /// POSTs a document; (status, body).
    fn post(&mut self, query: &str, variables: Value) -> (u16, Value) {
        let r = self
            .client
            .post_json(
                "/graphql",
                Some(&self.token),
                &json!({"query": query, "variables": variables}),
            )
            .unwrap();
        (r.status, r.json())
    }

    /// Runs a document that must execute without errors; its `data`.
    fn data(&mut self, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(query, variables);
        assert_eq!(status, 200, "{query}: {body}");
        assert!(body.get("errors").is_none(), "{query}: {body}");
        body["data"].clone()
    }
}

/// A world to query: a BI integration with a runtime and an MI one with a
/// runtime in `dev`, as the console would see them.
struct World {
    server: TestServer,
    admin: Gql,
    env_id: String,
    project_id: String,
    bi_id: String,
    mi_id: String,
    bi_runtime: String,
    mi_runtime: String,
}

fn world() -> World {
    let server = TestServer::start(&[]);
    let mut admin = Gql::new(&server, "root", Some("Super Admin"));
    let d = admin.data(
        r#"mutation { createProject(project: {orgId: 1, orgHandler: "default", name: "Order Service", projectHandler: "order-service", version: "1.0.0", description: "Orders"}) { id handler } }"#,
        json!({}),
    );
    let project_id = d["createProject"]["id"].as_str().unwrap().to_string();
    let create = |admin: &mut Gql, name: &str, kind: &str| {
        admin.data(
            "mutation C($c: ComponentInput!) { createComponent(component: $c) { id handler componentType } }",
            json!({"c": {"projectId": project_id, "name": name, "displayName": name, "orgId": 1, "orgHandler": "default", "componentType": kind, "technology": "WSO2MI", "isPublicRepo": false}}),
        )["createComponent"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let bi_id = create(&mut admin, "order-create", "BI");
    let mi_id = create(&mut admin, "order-mi", "MI");
    let env_id = admin.data(
        "{ environments(type: \"non-prod\") { items { id handler } } }",
        json!({}),
    )["environments"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["handler"] == "dev")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = admin.data(
        "mutation S($e: String!, $c: String) { createOrgSecret(environmentId: $e, componentId: $c) }",
        json!({"e": env_id, "c": bi_id}),
    )["createOrgSecret"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rc = server.runtime_client();
    let bridge = Bridge::new(&secret, Some("node-1"));
    assert_eq!(bridge.full(&mut rc).status, 200);
    let mi_secret = server.secret("dev", Some(("order-service", "order-mi")));
    let mi = MiRuntime::new(&mi_secret, "dev", "order-service", "order-mi", "mi-node-1");
    assert_eq!(mi.full(&mut rc).status, 200);
    World {
        bi_runtime: bridge.runtime_id.clone(),
        mi_runtime: mi.runtime_id.clone(),
        server,
        admin,
        env_id,
        project_id,
        bi_id,
        mi_id,
    }
}

// ---- the schema ------------------------------------------------------------------------

/// Differences between GRAPHQL.md's SDL and icpd's served schema, each
/// with its reason. Empty: icpd serves exactly the documented R-NEW schema.
const ALLOWED_DIFFERENCES: &[(&str, &str)] = &[];

#[test]
fn the_served_schema_is_the_documented_one() {
    let server = TestServer::start(&[]);
    let mut admin = Gql::new(&server, "root", Some("Super Admin"));
    let served = served_schema(&admin.data(INTROSPECTION, json!({})));
    let doc = doc_schema();
    assert!(
        doc.len() > 100,
        "parsed only {} types from GRAPHQL.md",
        doc.len()
    );
    let mut diffs = BTreeSet::new();
    for (name, want) in &doc {
        let Some(have) = served.get(name) else {
            diffs.insert(format!("missing type {name}"));
            continue;
        };
        if have.kind != want.kind {
            diffs.insert(format!(
                "{name}: kind {} instead of {}",
                have.kind, want.kind
            ));
        }
        for (f, sig) in &want.fields {
            match have.fields.get(f) {
                None => {
                    diffs.insert(format!("{name}.{f}: missing"));
                }
                Some(h) if h != sig => {
                    diffs.insert(format!(
                        "{name}.{f}: served ({}) {}, documented ({}) {}",
                        h.args.join(", "),
                        h.ty,
                        sig.args.join(", "),
                        sig.ty
                    ));
                }
                _ => {}
            }
        }
        for f in have.fields.keys().filter(|f| !want.fields.contains_key(*f)) {
            diffs.insert(format!("{name}.{f}: not documented"));
        }
    }
    for name in served.keys().filter(|n| !doc.contains_key(*n)) {
        diffs.insert(format!("extra type {name}"));
    }
    let allowed: BTreeSet<String> = ALLOWED_DIFFERENCES
        .iter()
        .map(|(d, _)| d.to_string())
        .collect();
    let unexpected: Vec<&String> = diffs.difference(&allowed).collect();
    assert!(
        unexpected.is_empty(),
        "{} difference(s) between the served schema and GRAPHQL.md:\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The root types are complete: 64 queries and 24 mutations (§6.14).
    assert_eq!(served["Query"].fields.len(), 64);
    assert_eq!(served["Mutation"].fields.len(), 24);
}

// ---- golden shapes of the console's documents -----------------------------------------

/// A selection set: (response key, field name, sub-selection).
#[derive(Debug, Clone)]
struct Sel {
    key: String,
    field: String,
    sub: Vec<Sel>,
}

/// Parses the first operation's selection set of a document (no fragments).
fn selections(doc: &str) -> Vec<Sel> {
    let chars: Vec<char> = doc.chars().collect();
    // Skip to the operation's opening brace (past its variable definitions).
    let mut i = 0;
    let mut paren = 0;
    while i < chars.len() {
        match chars[i] {
            '(' => paren += 1,
            ')' => paren -= 1,
            '{' if paren == 0 => break,
            _ => {}
        }
        i += 1;
    }
    let (sels, _) = parse_set(&chars, i + 1);
    sels
}

fn parse_set(c: &[char], mut i: usize) -> (Vec<Sel>, usize) {
    let mut out = Vec::new();
    let word = |c: &[char], mut i: usize| {
        let start = i;
        while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
            i += 1;
        }
        (c[start..i].iter().collect::<String>(), i)
    };
    loop {
        while i < c.len() && (c[i].is_whitespace() || c[i] == ',') {
            i += 1;
        }
        if i >= c.len() || c[i] == '}' {
            return (out, i + 1);
        }
        let (first, j) = word(c, i);
        i = j;
        while c[i].is_whitespace() {
            i += 1;
        }
        let (key, field) = if c[i] == ':' {
            i += 1;
            while c[i].is_whitespace() {
                i += 1;
            }
            let (f, j) = word(c, i);
            i = j;
            (first, f)
        } else {
            (first.clone(), first)
        };
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        if i < c.len() && c[i] == '(' {
            let mut depth = 0;
            loop {
                match c[i] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        let mut sub = Vec::new();
        if i < c.len() && c[i] == '{' {
            let (s, j) = parse_set(c, i + 1);
            sub = s;
            i = j;
        }
        out.push(Sel { key, field, sub });
    }
}

const ARTIFACT_STATES: &[&str] = &["enabled", "disabled"];
const ARTIFACT_TYPES: &[&str] = &[
    "Service",
    "Listener",
    "RestApi",
    "ProxyService",
    "Endpoint",
    "InboundEndpoint",
    "Sequence",
    "Task",
    "Template",
    "MessageStore",
    "MessageProcessor",
    "LocalEntry",
    "DataService",
    "CompositeApp",
    "DataSource",
    "Connector",
    "RegistryResource",
];

/// Checks `value` against the documented type `ty` and selection `sub`;
/// pushes what does not fit to `errs`.
fn check_shape(
    schema: &BTreeMap<String, TypeDef>,
    path: &str,
    ty: &str,
    sub: &[Sel],
    value: &Value,
    errs: &mut Vec<String>,
) {
    let (inner, non_null) = match ty.strip_suffix('!') {
        Some(t) => (t, true),
        None => (ty, false),
    };
    if value.is_null() {
        if non_null {
            errs.push(format!("{path}: null for non-null {ty}"));
        }
        return;
    }
    if let Some(item) = inner.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        match value.as_array() {
            None => errs.push(format!("{path}: {value} is not a list ({ty})")),
            Some(items) => {
                for (n, v) in items.iter().enumerate() {
                    check_shape(schema, &format!("{path}[{n}]"), item, sub, v, errs);
                }
            }
        }
        return;
    }
    let ok = match inner {
        "String" => value.is_string(),
        "Int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "Boolean" => value.is_boolean(),
        "ArtifactState" => value.as_str().is_some_and(|s| ARTIFACT_STATES.contains(&s)),
        "ArtifactType" => value.as_str().is_some_and(|s| ARTIFACT_TYPES.contains(&s)),
        name => match schema.get(name) {
            Some(t) if t.kind == "enum" => value.as_str().is_some_and(|s| t.fields.contains_key(s)),
            Some(t) => {
                let Some(obj) = value.as_object() else {
                    errs.push(format!("{path}: {value} is not an object ({name})"));
                    return;
                };
                let keys: BTreeSet<&str> = sub.iter().map(|s| s.key.as_str()).collect();
                let got: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
                if keys != got {
                    errs.push(format!("{path}: keys {got:?}, selected {keys:?}"));
                }
                for s in sub {
                    match t.fields.get(&s.field) {
                        None => errs.push(format!("{path}.{}: not a field of {name}", s.field)),
                        Some(f) => check_shape(
                            schema,
                            &format!("{path}.{}", s.key),
                            &f.ty,
                            &s.sub,
                            &obj[&s.key],
                            errs,
                        ),
                    }
                }
                true
            }
            None => {
                errs.push(format!("{path}: unknown type {name}"));
                true
            }
        },
    };
    if !ok {
        errs.push(format!("{path}: {value} does not fit {ty}"));
    }
}

/// Runs a console document and checks its answer against GRAPHQL.md's
/// types; returns `data`.
fn golden(gql: &mut Gql, schema: &BTreeMap<String, TypeDef>, doc: &str, variables: Value) -> Value {
    let data = gql.data(doc, variables);
    let root = if doc.trim_start().starts_with("mutation") {
        "Mutation"
    } else {
        "Query"
    };
    let mut errs = Vec::new();
    let sels = selections(doc);
    let obj = data.as_object().unwrap();
    assert_eq!(obj.len(), sels.len(), "{doc}: {data}");
    for s in &sels {
        let f = &schema[root].fields[&s.field];
        check_shape(schema, &s.key, &f.ty, &s.sub, &data[&s.key], &mut errs);
    }
    assert!(errs.is_empty(), "{doc}\n{data:#}\n{}", errs.join("\n"));
    data
}

const PAGE: &str = "pageInfo { total limit offset }";

/// The `ArtifactQuery` selections of GRAPHQL.md §6.6, per list field.
fn artifact_queries() -> Vec<(&'static str, &'static str)> {
    let rt = "runtimes { runtimeId runtimeName status }";
    vec![
        ("restApisByEnvironmentAndComponent", "name context version state stateInSync tracing tracingInSync statistics statisticsInSync compositeApp url RT resources { path methods }"),
        ("proxyServicesByEnvironmentAndComponent", "name state stateInSync tracing tracingInSync statistics statisticsInSync compositeApp endpoints RT"),
        ("endpointsByEnvironmentAndComponent", "name type state stateInSync tracing tracingInSync statistics statisticsInSync attributes { name value } RT"),
        ("inboundEndpointsByEnvironmentAndComponent", "name protocol sequence onError state stateInSync tracing tracingInSync statistics statisticsInSync compositeApp RT"),
        ("sequencesByEnvironmentAndComponent", "name type container state stateInSync tracing tracingInSync statistics statisticsInSync RT"),
        ("tasksByEnvironmentAndComponent", "name class group state stateInSync compositeApp RT"),
        ("localEntriesByEnvironmentAndComponent", "name type value state stateInSync RT"),
        ("compositeAppsByEnvironmentAndComponent", "name version state errorMessage artifacts { name type } RT"),
        ("connectorsByEnvironmentAndComponent", "name package version description state stateInSync RT"),
        ("registryResourcesByEnvironmentAndComponent", "name type RT"),
        ("listenersByEnvironmentAndComponent", "name package protocol host port state stateInSync RT"),
        ("servicesByEnvironmentAndComponent", "name package basePath type state stateInSync RT resources { path method url methods } listeners { name package protocol host port state }"),
        ("automationsByEnvironmentAndComponent", "packageOrg packageName packageVersion runtimeIds runtimes { runtimeId runtimeName status executionTimestamps } executionTimestamp"),
        ("workflowsByEnvironmentAndComponent", "name isActive workerCount inputSchema state RT"),
        ("messageStoresByEnvironmentAndComponent", "name type size state stateInSync compositeApp RT"),
        ("messageProcessorsByEnvironmentAndComponent", "name type state stateInSync compositeApp RT"),
        ("templatesByEnvironmentAndComponent", "name type tracing statistics compositeApp RT"),
        ("dataServicesByEnvironmentAndComponent", "name description state stateInSync compositeApp errorMessage RT"),
        ("dataSourcesByEnvironmentAndComponent", "name type driver url username state RT"),
    ]
    .into_iter()
    .map(|(f, s)| (f, &*Box::leak(s.replace("RT", rt).into_boxed_str())))
    .collect()
}

#[test]
fn the_consoles_documents_answer_in_the_documented_shapes() {
    let mut w = world();
    let schema = doc_schema();
    let g = &mut w.admin;
    let env = json!(w.env_id);

    // 1. environments, both forms (§7 rank 1).
    let d = golden(g, &schema, &format!("{{ environments {{ items {{ id name handler description critical createdAt }} {PAGE} }} }}"), json!({}));
    assert_eq!(d["environments"]["pageInfo"]["total"], 2);
    let d = golden(g, &schema, &format!("query GetEnvironments($projectId: String) {{ environments(orgUuid: \"default-org-uuid\", type: \"external\", projectId: $projectId) {{ items {{ id name handler description critical createdAt }} {PAGE} }} }}"), json!({"projectId": w.project_id}));
    assert_eq!(d["environments"]["items"].as_array().unwrap().len(), 2);

    // 2. projectByHandler (rank 2) and projects (rank 7).
    let proj = "id orgId name handler description version createdDate updatedAt region type";
    let d = golden(g, &schema, &format!("query GetProjectByHandler($orgId: Int!, $projectHandler: String!) {{ projectByHandler(orgId: $orgId, projectHandler: $projectHandler) {{ {proj} }} }}"), json!({"orgId": 1, "projectHandler": "order-service"}));
    assert_eq!(d["projectByHandler"]["id"], json!(w.project_id));
    assert_eq!(d["projectByHandler"]["orgId"], 1);
    let d = golden(
        g,
        &schema,
        &format!("{{ projects(orgId: 1) {{ items {{ {proj} }} {PAGE} }} }}"),
        json!({}),
    );
    assert_eq!(d["projects"]["pageInfo"]["total"], 1);
    golden(g, &schema, &format!("query GetProjectsPage($limit: Int!, $offset: Int!) {{ projects(orgId: 1, pagination: {{limit: $limit, offset: $offset}}) {{ items {{ {proj} }} {PAGE} }} }}"), json!({"limit": 5, "offset": 0}));

    // 3. component by project and handler (rank 3), components (rank 5).
    let comp = "id name handler displayName description componentType projectId orgHandler status initStatus version createdAt displayType componentId project { id handler }";
    let d = golden(g, &schema, &format!("query GetComponent($projectId: String!, $componentHandler: String!) {{ component(projectId: $projectId, componentHandler: $componentHandler) {{ {comp} }} }}"), json!({"projectId": w.project_id, "componentHandler": "order-mi"}));
    assert_eq!(d["component"]["id"], json!(w.mi_id));
    assert_eq!(d["component"]["componentType"], "MI");
    assert_eq!(
        d["component"]["orgHandler"], "order-service",
        "quirk: the project's handler"
    );
    let d = golden(g, &schema, &format!("query GetComponents($orgHandler: String!, $projectId: String) {{ components(orgHandler: $orgHandler, projectId: $projectId) {{ items {{ {comp} }} {PAGE} }} }}"), json!({"orgHandler": "default", "projectId": w.project_id}));
    assert_eq!(d["components"]["pageInfo"]["total"], 2);
    golden(g, &schema, &format!("query GetComponentsPage($projectId: String, $limit: Int!, $offset: Int!) {{ components(orgHandler: \"default\", projectId: $projectId, options: {{pagination: {{limit: $limit, offset: $offset}}}}) {{ items {{ {comp} }} {PAGE} }} }}"), json!({"projectId": w.project_id, "limit": 1, "offset": 1}));

    // 4. Every artifact list through the generic ArtifactQuery (rank 4), paged and not.
    for (field, fields) in artifact_queries() {
        let component = if matches!(
            field,
            "listenersByEnvironmentAndComponent"
                | "servicesByEnvironmentAndComponent"
                | "automationsByEnvironmentAndComponent"
                | "workflowsByEnvironmentAndComponent"
        ) {
            &w.bi_id
        } else {
            &w.mi_id
        };
        let d = golden(g, &schema, &format!("query ArtifactQuery($environmentId: String!, $componentId: String!) {{ {field}(environmentId: $environmentId, componentId: $componentId) {{ items {{ {fields} }} {PAGE} }} }}"), json!({"environmentId": env, "componentId": component}));
        if field != "workflowsByEnvironmentAndComponent" {
            assert_eq!(d[field]["pageInfo"]["total"], 1, "{field}: {d}");
        }
        golden(g, &schema, &format!("query ArtifactQuery($environmentId: String!, $componentId: String!, $limit: Int!, $offset: Int!) {{ {field}(environmentId: $environmentId, componentId: $componentId, pagination: {{limit: $limit, offset: $offset}}) {{ items {{ {fields} }} {PAGE} }} }}"), json!({"environmentId": env, "componentId": component, "limit": 10000, "offset": 0}));
    }
    let d = g.data("query($e: String!, $c: String!) { proxyServicesByEnvironmentAndComponent(environmentId: $e, componentId: $c) { items { name state runtimes { runtimeId status } } } }", json!({"e": env, "c": w.mi_id}));
    let proxy = &d["proxyServicesByEnvironmentAndComponent"]["items"][0];
    assert_eq!(proxy["name"], "StockQuoteProxy");
    assert_eq!(
        proxy["state"], "enabled",
        "ArtifactState is emitted by value"
    );
    assert_eq!(proxy["runtimes"][0]["runtimeId"], json!(w.mi_runtime));

    // 5. runtimes (rank 6): the console's selections, per component and paged.
    let rt = "runtimeId runtimeName runtimeType status version platformName platformVersion platformHome osName osVersion registrationTime lastHeartbeat component { id displayName }";
    let d = golden(g, &schema, &format!("query GetComponentRuntimes($projectId: String, $componentId: String, $environmentId: String) {{ runtimes(projectId: $projectId, componentId: $componentId, environmentId: $environmentId) {{ items {{ {rt} }} {PAGE} }} }}"), json!({"projectId": w.project_id, "componentId": w.bi_id, "environmentId": env}));
    assert_eq!(d["runtimes"]["items"][0]["runtimeId"], json!(w.bi_runtime));
    assert_eq!(d["runtimes"]["items"][0]["status"], "RUNNING");
    assert_eq!(d["runtimes"]["items"][0]["platformName"], "ballerina");
    let d = golden(g, &schema, &format!("query GetOrgRuntimesPage($environmentId: String, $limit: Int!, $offset: Int!) {{ runtimes(environmentId: $environmentId, pagination: {{limit: $limit, offset: $offset}}) {{ items {{ {rt} }} {PAGE} }} }}"), json!({"environmentId": env, "limit": 1, "offset": 0}));
    assert_eq!(
        d["runtimes"]["pageInfo"],
        json!({"total": 2, "limit": 1, "offset": 0})
    );
    // Newest registration first: the MI runtime registered second.
    assert_eq!(d["runtimes"]["items"][0]["runtimeId"], json!(w.mi_runtime));
    golden(g, &schema, &format!("query GetProjectRuntimes($projectId: String) {{ runtimes(projectId: $projectId) {{ items {{ {rt} }} {PAGE} }} }}"), json!({"projectId": w.project_id}));

    // 6. The one-call-site queries.
    let d = golden(g, &schema, "query GetLoggers($environmentId: String!, $componentId: String!) { loggersByEnvironmentAndComponent(environmentId: $environmentId, componentId: $componentId) { items { loggerName componentName logLevel logLevelInSync runtimeIds } pageInfo { total limit offset } preparing stale retryAfterMs } }", json!({"environmentId": env, "componentId": w.bi_id}));
    assert_eq!(
        d["loggersByEnvironmentAndComponent"]["items"][0]["componentName"],
        "acme/orders"
    );
    let d = golden(g, &schema, "query($componentId: String!, $environmentId: String) { componentArtifactTypes(componentId: $componentId, environmentId: $environmentId) { artifactType artifactCount } }", json!({"componentId": w.mi_id, "environmentId": env}));
    let kinds: Vec<&str> = d["componentArtifactTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["artifactType"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"RestApi") && kinds.contains(&"CompositeApp"),
        "{kinds:?}"
    );
    let d = golden(g, &schema, &format!("query GetOrgSecrets($environmentId: String) {{ orgSecrets(environmentId: $environmentId) {{ items {{ keyId environmentId environmentName bound createdAt createdBy }} {PAGE} }} }}"), json!({"environmentId": env}));
    assert_eq!(d["orgSecrets"]["pageInfo"]["total"], 2);
    let d = golden(g, &schema, &format!("query GetComponentSecrets($componentId: String!, $environmentId: String!) {{ componentSecrets(componentId: $componentId, environmentId: $environmentId) {{ items {{ keyId createdAt createdBy runtimes {{ runtimeId status }} }} {PAGE} }} }}"), json!({"componentId": w.bi_id, "environmentId": env}));
    assert_eq!(
        d["componentSecrets"]["items"][0]["runtimes"][0]["runtimeId"],
        json!(w.bi_runtime)
    );
    let d = golden(g, &schema, "query($c: String!) { environmentHandlerAvailability(environmentHandlerCandidate: $c) { handlerUnique alternateHandlerCandidate } }", json!({"c": "dev"}));
    assert_eq!(
        d["environmentHandlerAvailability"],
        json!({"handlerUnique": false, "alternateHandlerCandidate": "dev1"})
    );
    golden(g, &schema, "query($c: String!) { projectHandlerAvailability(orgId: 1, projectHandlerCandidate: $c) { handlerUnique alternateHandlerCandidate } }", json!({"c": "brand-new"}));
    golden(
        g,
        &schema,
        "{ systemInfo { version } observabilityMetricsConfig { configured } }",
        json!({}),
    );

    // 7. The console's mutations.
    let d = golden(g, &schema, "mutation UpdateListenerState($input: ListenerControlInput!) { updateListenerState(input: $input) { success message commandIds } }", json!({"input": {"runtimeIds": [w.bi_runtime], "listenerName": "listener_1", "action": "STOP"}}));
    assert_eq!(d["updateListenerState"]["success"], true);
    let d = g.data("query($e: String!, $c: String!) { listenersByEnvironmentAndComponent(environmentId: $e, componentId: $c) { items { name state stateInSync } } }", json!({"e": env, "c": w.bi_id}));
    assert_eq!(
        d["listenersByEnvironmentAndComponent"]["items"][0],
        json!({"name": "listener_1", "state": "disabled", "stateInSync": false}),
        "desired state overlaid until the runtime reports it"
    );
    let d = golden(g, &schema, "mutation UpdateLogLevel($input: UpdateLogLevelInput!) { updateLogLevel(input: $input) { success message commandIds preparing stale retryAfterMs } }", json!({"input": {"runtimeIds": [w.bi_runtime], "componentName": "acme/orders", "logLevel": "DEBUG"}}));
    assert_eq!(
        d["updateLogLevel"]["message"],
        "Log level for acme/orders set to DEBUG"
    );
    let d = golden(g, &schema, "mutation UpdateArtifactStatus($input: ArtifactStatusChangeInput!) { updateArtifactStatus(input: $input) { status message successCount failedCount details } }", json!({"input": {"componentId": w.mi_id, "artifactType": "proxy-service", "artifactName": "StockQuoteProxy", "status": "DISABLED", "environmentId": env}}));
    assert_eq!(d["updateArtifactStatus"]["status"], "SUCCESS", "{d}");
    let d = g.data("query($e: String!, $c: String!) { proxyServicesByEnvironmentAndComponent(environmentId: $e, componentId: $c) { items { state stateInSync } } }", json!({"e": env, "c": w.mi_id}));
    assert_eq!(
        d["proxyServicesByEnvironmentAndComponent"]["items"][0],
        json!({"state": "disabled", "stateInSync": false})
    );
    golden(g, &schema, "mutation($input: ArtifactTracingChangeInput!) { updateArtifactTracingStatus(input: $input) { status message successCount failedCount details } }", json!({"input": {"componentId": w.mi_id, "environmentId": env, "artifactType": "api", "artifactName": "HealthcareAPI", "trace": "ENABLED"}}));
    golden(g, &schema, "mutation($input: ArtifactStatisticsChangeInput!) { updateArtifactStatisticsStatus(input: $input) { status message successCount failedCount details } }", json!({"input": {"componentId": w.mi_id, "environmentId": env, "artifactType": "RestApi", "artifactName": "HealthcareAPI", "statistics": "ENABLED"}}));
    let d = golden(g, &schema, "mutation TriggerTask($input: ArtifactTriggerInput!) { triggerArtifact(input: $input) { status message successCount failedCount details } }", json!({"input": {"componentId": w.mi_id, "taskName": "InventorySyncTask"}}));
    assert_eq!(d["triggerArtifact"]["details"].as_array().unwrap().len(), 1);
    let d = golden(
        g,
        &schema,
        "mutation($e: String!) { createOrgSecret(environmentId: $e) }",
        json!({"e": env}),
    );
    let key_id = d["createOrgSecret"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let d = golden(
        g,
        &schema,
        "mutation($k: String!) { revokeOrgSecret(keyId: $k) }",
        json!({"k": key_id}),
    );
    assert_eq!(d["revokeOrgSecret"], true);
    let d = golden(g, &schema, "mutation($p: ProjectUpdateInput!) { updateProject(project: $p) { id name description version } }", json!({"p": {"id": w.project_id, "name": "Orders", "description": "All orders", "version": "1.0.0"}}));
    assert_eq!(d["updateProject"]["name"], "Orders");
    let d = golden(g, &schema, "mutation($c: ComponentUpdateInput!) { updateComponent(component: $c) { id displayName description } }", json!({"c": {"id": w.bi_id, "displayName": "Order create", "description": "d"}}));
    assert_eq!(d["updateComponent"]["displayName"], "Order create");
    let d = golden(g, &schema, "mutation($e: EnvironmentInput!) { createEnvironment(environment: $e) { id name handler critical } }", json!({"e": {"name": "QA", "environmentHandler": "qa", "description": "qa", "critical": false}}));
    let qa = d["createEnvironment"]["id"].as_str().unwrap().to_string();
    golden(g, &schema, "mutation($id: String!) { updateEnvironment(environmentId: $id, name: \"Quality\", description: \"q\", critical: false) { id name critical } }", json!({"id": qa}));
    let d = golden(
        g,
        &schema,
        "mutation($id: String!) { deleteEnvironment(environmentId: $id) }",
        json!({"id": qa}),
    );
    assert_eq!(d["deleteEnvironment"], true);
    let d = golden(g, &schema, "mutation($o: String!, $c: String!, $p: String!) { deleteComponentV2(orgHandler: $o, componentId: $c, projectId: $p) { status canDelete message encodedData } }", json!({"o": "default", "c": w.bi_id, "p": w.project_id}));
    assert_eq!(
        d["deleteComponentV2"]["status"], "FAILED",
        "it has a runtime"
    );
    let d = golden(g, &schema, "mutation($r: String!) { deleteRuntime(runtimeId: $r, revokeSecret: true) { deleted orphanedKeyId secretRevoked } }", json!({"r": w.bi_runtime}));
    assert_eq!(d["deleteRuntime"]["deleted"], true);
    assert_eq!(d["deleteRuntime"]["secretRevoked"], true);
    let d = golden(g, &schema, "mutation($o: String!, $c: String!, $p: String!) { deleteComponentV2(orgHandler: $o, componentId: $c, projectId: $p) { status canDelete message encodedData } }", json!({"o": "default", "c": w.bi_id, "p": w.project_id}));
    assert_eq!(d["deleteComponentV2"]["status"], "SUCCESS");
    let d = golden(
        g,
        &schema,
        "mutation($p: String!) { deleteProject(orgId: 1, projectId: $p) { status details } }",
        json!({"p": w.project_id}),
    );
    assert_eq!(
        d["deleteProject"]["status"], "failed",
        "it still has the MI integration"
    );
}

// ---- login, refresh, revoke -------------------------------------------------------------

fn jwt_part(token: &str, n: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(n).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn login_refresh_and_revoke_answer_as_icp_does() {
    let server = TestServer::start(&[]);
    server.create_user("vera", Some("Viewer"));
    let mut c = server.management_client();
    let post = |c: &mut icpd::http::client::Client,
                path: &str,
                bearer: Option<&str>,
                body: Value| { c.post_json(path, bearer, &body).unwrap() };

    let r = post(
        &mut c,
        "/auth/login",
        None,
        json!({"username": "vera", "password": "wrong-password"}),
    );
    assert_eq!(
        (r.status, r.json()),
        (401, json!({"message": "Invalid credentials"}))
    );
    let login = icp_login(&server, "vera");
    for key in [
        "userId",
        "token",
        "expiresIn",
        "refreshToken",
        "refreshTokenExpiresIn",
        "username",
        "displayName",
        "permissions",
        "isOidcUser",
        "requirePasswordChange",
    ] {
        assert!(login.get(key).is_some(), "login lacks {key}: {login}");
    }
    assert_eq!(login["expiresIn"], 3600);
    assert_eq!(login["isOidcUser"], false);
    assert_eq!(login["requirePasswordChange"], false);
    let perms: Vec<&str> = login["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        perms.contains(&"integration_mgt:view") && perms.contains(&"project_mgt:view"),
        "{perms:?}"
    );
    assert!(!perms.contains(&"integration_mgt:manage"), "{perms:?}");
    let token = login["token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&token, 0), json!({"alg": "HS256", "typ": "JWT"}));
    let claims = jwt_part(&token, 1);
    assert_eq!(claims["iss"], "icp-frontend-jwt-issuer");
    assert_eq!(claims["aud"], "icp-server");
    assert_eq!(claims["sub"], login["userId"]);
    assert_eq!(claims["username"], "vera");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(claims["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .any(|s| s == "integration_mgt:view"));

    let query = json!({"query": "{ systemInfo { version } }"});
    let ask = |c: &mut icpd::http::client::Client, bearer: Option<&str>| {
        let r = c.post_json("/graphql", bearer, &query).unwrap();
        (r.status, r.json())
    };
    assert_eq!(ask(&mut c, Some(&token)).0, 200);
    let refused = json!({"errors": [{"message": "Required authentication information is either missing or not valid for the resource."}]});
    assert_eq!(
        ask(&mut c, None),
        (400, refused.clone()),
        "the reference's status and text for a missing token"
    );
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(ask(&mut c, Some(&forged)), (400, refused.clone()));
    assert_eq!(
        ask(&mut c, Some("icps_not-a-session")),
        (400, refused.clone())
    );

    // icpd's own tokens are accepted too.
    let rest = server.login("vera", TEST_PASSWORD).json();
    assert_eq!(ask(&mut c, rest["token"].as_str()).0, 200);

    // The refresh token is not a bearer token.
    assert_eq!(
        ask(&mut c, login["refreshToken"].as_str()),
        (400, refused.clone())
    );
    // Refresh rotates the refresh token; the session (and a console token
    // still in flight) lives on, to the session's own end.
    let r = post(
        &mut c,
        "/auth/refresh-token",
        None,
        json!({"refreshToken": ""}),
    );
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"message": "Refresh token is required"}))
    );
    let old_refresh = login["refreshToken"].as_str().unwrap();
    let r = post(
        &mut c,
        "/auth/refresh-token",
        None,
        json!({"refreshToken": old_refresh}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let fresh = r.json();
    assert!(
        fresh.get("userId").is_none() && fresh.get("isOidcUser").is_none(),
        "{fresh}"
    );
    assert_eq!(fresh["username"], "vera");
    let r = post(
        &mut c,
        "/auth/refresh-token",
        None,
        json!({"refreshToken": old_refresh}),
    );
    assert_eq!(
        (r.status, r.json()),
        (401, json!({"message": "Invalid or expired refresh token"}))
    );
    assert_eq!(ask(&mut c, Some(&token)).0, 200);
    assert!(
        fresh["refreshTokenExpiresIn"].as_i64().unwrap()
            <= login["refreshTokenExpiresIn"].as_i64().unwrap(),
        "refreshing never extends the session: {fresh} {login}"
    );
    let new_token = fresh["token"].as_str().unwrap().to_string();
    assert_eq!(ask(&mut c, Some(&new_token)).0, 200);

    // Revoking the refresh token ends its console token at once.
    let r = post(
        &mut c,
        "/auth/revoke-token",
        Some(&new_token),
        json!({"refreshToken": fresh["refreshToken"]}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"message": "Refresh token revoked successfully"})
        )
    );
    assert_eq!(ask(&mut c, Some(&new_token)), (400, refused.clone()));
    assert_eq!(ask(&mut c, Some(&token)), (400, refused));

    // Lock-out as icpd's login has it: 429 with the wait.
    for _ in 0..5 {
        post(
            &mut c,
            "/auth/login",
            None,
            json!({"username": "vera", "password": "wrong-password"}),
        );
    }
    let r = post(
        &mut c,
        "/auth/login",
        None,
        json!({"username": "vera", "password": TEST_PASSWORD}),
    );
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        wait > 0 && r.json()["retryAfterSeconds"] == json!(wait),
        "{}",
        r.json()
    );

    // Each attempt is audited, with the name tried.
    let audit = recent_audit(&server.data_dir);
    assert!(
        audit.iter().any(|a| a.action == "POST /auth/login"
            && a.actor == "vera"
            && a.outcome == "refused 429"),
        "{audit:?}"
    );
}

#[test]
fn the_transport_follows_the_reference() {
    let server = TestServer::start(&[]);
    let g = Gql::new(&server, "root", Some("Super Admin"));
    let mut c = server.management_client();
    let auth = format!("Bearer {}", g.token);
    let send =
        |c: &mut icpd::http::client::Client, method: &str, path: &str, ctype: &str, body: &str| {
            let r = c
                .request(
                    method,
                    path,
                    &[("Authorization", auth.as_str()), ("Content-Type", ctype)],
                    body.as_bytes(),
                )
                .unwrap();
            (r.status, r.json())
        };
    // A charset parameter is accepted (the reference compares exactly; icpd need not).
    let (s, b) = send(
        &mut c,
        "POST",
        "/graphql",
        "application/json; charset=utf-8",
        r#"{"query":"{ systemInfo { version } }"}"#,
    );
    assert_eq!(
        (s, &b["data"]["systemInfo"]["version"]),
        (200, &json!(env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        send(&mut c, "POST", "/graphql", "application/graphql", "{ a }"),
        (
            400,
            json!("Content-Type 'application/graphql' is not yet supported")
        )
    );
    assert_eq!(
        send(&mut c, "POST", "/graphql", "application/json", "[]"),
        (400, json!("Invalid request body"))
    );
    // GET runs queries, refuses mutations.
    let q = "/graphql?query=%7B%20systemInfo%20%7B%20version%20%7D%20%7D";
    assert_eq!(send(&mut c, "GET", q, "", "").0, 200);
    assert_eq!(
        send(&mut c, "GET", "/graphql", "", ""),
        (400, json!("Query not found"))
    );
    let m = "/graphql?query=mutation%20%7B%20revokeOrgSecret(keyId%3A%20%22x%22)%20%7D";
    let (s, b) = send(&mut c, "GET", m, "", "");
    assert_eq!(s, 400, "{b}");
    // Validation errors: 400, errors with locations, no data.
    let (s, b) = send(
        &mut c,
        "POST",
        "/graphql",
        "application/json",
        r#"{"query":"{\n  systemInfo { versio }\n}"}"#,
    );
    assert_eq!(s, 400);
    assert!(b.get("data").is_none(), "{b}");
    assert_eq!(
        b["errors"][0]["locations"][0],
        json!({"line": 2, "column": 16})
    );
    // Execution errors: 200, errors before data, with path.
    let r = c
        .request(
            "POST",
            "/graphql",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            br#"{"query":"{ runtimes { items { runtimeId } } }"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.starts_with(r#"{"errors":[{"#), "{text}");
    assert_eq!(
        r.json()["errors"][0]["message"],
        "Either projectId or componentId must be provided"
    );
    assert_eq!(r.json()["errors"][0]["path"], json!(["runtimes"]));
    // A mutation is audited by the field it ran and the ids it named, not
    // by an alias the client chose; its arguments are never all recorded.
    let (s, b) = send(
        &mut c,
        "POST",
        "/graphql",
        "application/json",
        r#"{"query":"mutation { harmless: revokeOrgSecret(keyId: \"abcdef12\") }"}"#,
    );
    assert_eq!(s, 200, "{b}");
    let audit = recent_audit(&server.data_dir);
    let entry = audit
        .iter()
        .find(|a| a.action == "POST /graphql")
        .expect("the mutation is audited");
    assert_eq!(entry.target, "mutation revokeOrgSecret(keyId: abcdef12)");
    assert_eq!(entry.actor, "root");
    assert!(entry.outcome.starts_with("refused"), "{entry:?}");
    // Queries are not audited.
    assert_eq!(
        audit.iter().filter(|a| a.action == "POST /graphql").count(),
        1
    );
    // Field order follows the document.
    let (_, b) = send(
        &mut c,
        "POST",
        "/graphql",
        "application/json",
        r#"{"query":"{ b: systemInfo { version } a: observabilityMetricsConfig { configured } }"}"#,
    );
    assert!(b["data"].is_object());
    let r = c
        .request("POST", "/graphql", &[("Authorization", auth.as_str()), ("Content-Type", "application/json")], br#"{"query":"{ b: systemInfo { version } a: observabilityMetricsConfig { configured } }"}"#)
        .unwrap();
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.find("\"b\"").unwrap() < text.find("\"a\"").unwrap(),
        "{text}"
    );
}

#[test]
fn hostile_documents_get_graphql_errors_not_a_busy_worker() {
    let server = TestServer::start(&[]);
    let mut g = Gql::new(&server, "root", Some("Super Admin"));
    // Deep nesting.
    let deep = format!("{}{}", "{ a ".repeat(200), "}".repeat(200));
    let (s, b) = g.post(&deep, json!({}));
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("split it into smaller requests"),
        "{b}"
    );
    // 10,000 aliases.
    let aliases: String = (0..10_000)
        .map(|n| format!("a{n}: systemInfo {{ version }} "))
        .collect();
    let (s, b) = g.post(&format!("{{ {aliases} }}"), json!({}));
    assert_eq!(s, 400, "{b}");
    // Fragments that expand exponentially.
    let mut doc = String::from("{ ...F0 }\nfragment F0 on Query { systemInfo { version } }\n");
    for n in 1..30 {
        doc.push_str(&format!(
            "fragment F{n} on Query {{ ...F{} ...F{} }}\n",
            n - 1,
            n - 1
        ));
    }
    doc = doc.replacen("{ ...F0 }", "{ ...F29 }", 1);
    let (s, b) = g.post(&doc, json!({}));
    assert_eq!(s, 400, "{b}");
    // Wrong variable types, huge variables.
    let (s, b) = g.post(
        "query($l: Int) { projects(orgId: 1, pagination: {limit: $l}) { pageInfo { total } } }",
        json!({"l": "ten"}),
    );
    assert_eq!(s, 400, "{b}");
    let big = "x".repeat(200_000);
    let (s, b) = g.post(
        "query($h: String!) { projectByHandler(orgId: 1, projectHandler: $h) { id } }",
        json!({"h": big}),
    );
    assert_eq!(
        (s, &b["data"]["projectByHandler"]),
        (200, &Value::Null),
        "{b}"
    );
    // Many pages at once hit the item budget with a message saying what to do.
    let env = g.data("{ environments { items { id } } }", json!({}))["environments"]["items"][0]
        ["id"]
        .clone();
    let _ = env;
    // More root fields than one request may ask for.
    let wide: String = (0..31)
        .map(|n| format!("a{n}: systemInfo {{ version }} "))
        .collect();
    let (s, b) = g.post(&format!("{{ {wide} }}"), json!({}));
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("31 root fields"),
        "{b}"
    );
    // After all that the server answers at once.
    assert_eq!(g.post("{ systemInfo { version } }", json!({})).0, 200);
}

// ---- permissions per resolver ------------------------------------------------------------

/// How a resolver refuses a caller without access (§3: the console relies on it).
enum Denied {
    /// An empty page `{items: [], pageInfo: {0,0,0}}` at this field.
    EmptyPage,
    /// `null`.
    Null,
    /// A GraphQL error whose message contains this text.
    Error(&'static str),
    /// An empty list.
    EmptyList,
    /// A payload with this `status` (business failure).
    Payload(&'static str),
}

#[test]
fn every_resolver_refuses_a_caller_without_access_as_the_reference_does() {
    let w = world();
    let mut nobody = Gql::new(&w.server, "nobody", None);
    let (e, p, bi, mi, rb, rm) = (
        &w.env_id,
        &w.project_id,
        &w.bi_id,
        &w.mi_id,
        &w.bi_runtime,
        &w.mi_runtime,
    );
    let ec = format!("environmentId: \"{e}\", componentId: \"{mi}\"");
    let page = "{ items { __typename } pageInfo { total limit offset } }";
    let mut cases: Vec<(String, Denied)> = vec![
        (format!("{{ runtimes(projectId: \"{p}\") {page} }}"), Denied::EmptyPage),
        (format!("{{ runtimes(environmentId: \"{e}\") {page} }}"), Denied::EmptyPage),
        (format!("{{ runtime(runtimeId: \"{rb}\") {{ runtimeId }} }}"), Denied::Null),
        (format!("{{ componentDeployment(orgHandler: \"d\", orgUuid: \"u\", componentId: \"{bi}\", versionId: \"v\", environmentId: \"{e}\") {{ versionId }} }}"), Denied::Null),
        (format!("{{ services(runtimeId: \"{rb}\") {page} }}"), Denied::EmptyPage),
        (format!("{{ listeners(runtimeId: \"{rb}\") {page} }}"), Denied::EmptyPage),
        (format!("{{ loggersByRuntime(runtimeId: \"{rb}\") {page} }}"), Denied::EmptyPage),
        (format!("{{ logFilesByRuntime(runtimeId: \"{rm}\") {{ count files {{ fileName }} pageInfo {{ total limit offset }} }} }}"), Denied::EmptyPage),
        (format!("{{ logFileContent(runtimeId: \"{rm}\", fileName: \"wso2carbon.log\") {{ content }} }}"), Denied::Error("Unable to retrieve log file content")),
        (format!("{{ registryDirectory(runtimeId: \"{rm}\", path: \"registry\") {{ count }} }}"), Denied::Error("Unable to retrieve registry directory")),
        (format!("{{ registryFileContent(runtimeId: \"{rm}\", path: \"registry/x\") {{ content }} }}"), Denied::Error("Unable to retrieve registry file content")),
        (format!("{{ registryResourceMetadata(runtimeId: \"{rm}\", path: \"registry/x\") {{ name }} }}"), Denied::Error("Unable to retrieve registry resource metadata")),
        (format!("{{ registryResourceProperties(runtimeId: \"{rm}\", path: \"registry/x\") {{ count }} }}"), Denied::Error("Unable to retrieve registry resource properties")),
        (format!("{{ compositeAppFaultStackTrace(runtimeId: \"{rm}\", appName: \"A\") {{ faultStackTrace }} }}"), Denied::Error("Unauthorized")),
        (format!("{{ dataServiceFaultStackTrace(runtimeId: \"{rm}\", serviceName: \"A\") {{ faultStackTrace }} }}"), Denied::Error("Unauthorized")),
        (format!("{{ openApiDefinitionsByRuntime(runtimeId: \"{rb}\") {{ fileName }} }}"), Denied::EmptyList),
        (format!("{{ loggersByEnvironmentAndComponent(environmentId: \"{e}\", componentId: \"{bi}\") {page} }}"), Denied::EmptyPage),
        (format!("{{ project(projectId: \"{p}\") {{ id }} }}"), Denied::Null),
        ("{ projectByHandler(orgId: 1, projectHandler: \"order-service\") { id } }".to_string(), Denied::Null),
        (format!("{{ projects {page} }}"), Denied::EmptyPage),
        (format!("{{ components(orgHandler: \"default\") {page} }}"), Denied::EmptyPage),
        (format!("{{ component(componentId: \"{bi}\") {{ id }} }}"), Denied::Null),
        (format!("{{ componentArtifactTypes(componentId: \"{mi}\") {{ artifactCount }} }}"), Denied::EmptyList),
        (format!("{{ orgSecrets {page} }}"), Denied::Error("Access denied: insufficient permissions to view org secrets")),
        (format!("{{ componentSecrets(componentId: \"{bi}\", environmentId: \"{e}\") {page} }}"), Denied::Error("Access denied: insufficient permissions to view component secrets")),
        (format!("{{ getMIUsers(componentId: \"{mi}\", runtimeId: \"{rm}\") {page} }}"), Denied::Error("Insufficient permissions to view MI users")),
        (format!("{{ artifactSourceByComponent(componentId: \"{mi}\", artifactType: \"api\", artifactName: \"HealthcareAPI\") {{ content }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        (format!("{{ artifactWsdlByComponent(componentId: \"{mi}\", artifactType: \"proxy-service\", artifactName: \"StockQuoteProxy\") {{ content }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        (format!("{{ localEntryValueByComponent(componentId: \"{mi}\", entryName: \"ServiceConfig\") {{ content }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        (format!("{{ artifactParametersByComponent(componentId: \"{mi}\", artifactType: \"inbound-endpoint\", artifactName: \"OrderHttpInbound\") {{ preparing }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        (format!("{{ dataSourceOverviewByComponent(componentId: \"{mi}\", dataSourceName: \"CustomerDS\") {{ preparing }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        (format!("{{ messageStoreOverviewByComponent(componentId: \"{mi}\", storeName: \"OrderStore\") {{ preparing }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        (format!("{{ messageProcessorOverviewByComponent(componentId: \"{mi}\", processorName: \"OrderForwarder\") {{ preparing }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        (format!("{{ dataServiceOverviewByComponent(componentId: \"{mi}\", dataServiceName: \"CustomerDataService\") {{ preparing }} }}"), Denied::Error("Insufficient permissions to view component artifacts")),
        ("mutation { createProject(project: {orgId: 1, orgHandler: \"d\", name: \"X\", projectHandler: \"x\"}) { id } }".into(), Denied::Error("Insufficient permissions to create projects")),
        (format!("mutation {{ updateProject(project: {{id: \"{p}\", name: \"Y\"}}) {{ id }} }}"), Denied::Error("Insufficient permissions to update project")),
        (format!("mutation {{ deleteProject(orgId: 1, projectId: \"{p}\") {{ status }} }}"), Denied::Error("Insufficient permissions to delete project")),
        (format!("mutation {{ createComponent(component: {{projectId: \"{p}\", name: \"abc\"}}) {{ id }} }}"), Denied::Error("Insufficient permissions to create component in this project")),
        (format!("mutation {{ updateComponent(component: {{id: \"{bi}\", displayName: \"z\"}}) {{ id }} }}"), Denied::Error("Insufficient permissions to update this component")),
        (format!("mutation {{ deleteComponentV2(orgHandler: \"d\", componentId: \"{bi}\", projectId: \"{p}\") {{ status }} }}"), Denied::Payload("FAILED")),
        ("mutation { createEnvironment(environment: {name: \"n\", environmentHandler: \"n\", critical: false}) { id } }".into(), Denied::Error("Access denied: insufficient permissions to create environments")),
        (format!("mutation {{ updateEnvironment(environmentId: \"{e}\", name: \"n\") {{ id }} }}"), Denied::Error("Access denied")),
        (format!("mutation {{ updateEnvironmentProductionStatus(environmentId: \"{e}\", isProduction: true) {{ id }} }}"), Denied::Error("Access denied: full environment management permission required to change production status")),
        (format!("mutation {{ deleteEnvironment(environmentId: \"{e}\") }}"), Denied::Error("Access denied")),
        (format!("mutation {{ deleteRuntime(runtimeId: \"{rb}\") {{ deleted }} }}"), Denied::Error("Access denied: insufficient permissions to delete runtime")),
        (format!("mutation {{ updateListenerState(input: {{runtimeIds: [\"{rb}\"], listenerName: \"listener_1\", action: STOP}}) {{ success }} }}"), Denied::Error("Access denied: insufficient permissions to control listener on runtime")),
        (format!("mutation {{ updateLogLevel(input: {{runtimeIds: [\"{rb}\"], componentName: \"acme/orders\", logLevel: DEBUG}}) {{ success }} }}"), Denied::Error("Access denied: insufficient permissions to control log level on runtime")),
        (format!("mutation {{ deleteLogger(input: {{runtimeIds: [\"{rm}\"], loggerName: \"x\"}}) {{ success }} }}"), Denied::Error("Access denied: insufficient permissions to control log level on runtime")),
        (format!("mutation {{ updateArtifactStatus(input: {{componentId: \"{mi}\", artifactType: \"proxy-service\", artifactName: \"StockQuoteProxy\", status: DISABLED}}) {{ status }} }}"), Denied::Error("Insufficient permissions to change artifact status")),
        (format!("mutation {{ updateArtifactTracingStatus(input: {{componentId: \"{mi}\", environmentId: \"{e}\", artifactType: \"api\", artifactName: \"HealthcareAPI\", trace: ENABLED}}) {{ status }} }}"), Denied::Error("Insufficient permissions to change artifact tracing")),
        (format!("mutation {{ updateArtifactStatisticsStatus(input: {{componentId: \"{mi}\", environmentId: \"{e}\", artifactType: \"api\", artifactName: \"HealthcareAPI\", statistics: ENABLED}}) {{ status }} }}"), Denied::Error("Insufficient permissions to change artifact statistics")),
        (format!("mutation {{ triggerArtifact(input: {{componentId: \"{mi}\", taskName: \"InventorySyncTask\"}}) {{ status }} }}"), Denied::Error("Insufficient permissions to trigger task")),
        (format!("mutation {{ createOrgSecret(environmentId: \"{e}\") }}"), Denied::Error("Access denied: insufficient permissions to create org secrets")),
        ("mutation { revokeOrgSecret(keyId: \"abcdef12\") }".into(), Denied::Error("not found")),
        (format!("mutation {{ addMIUser(componentId: \"{mi}\", runtimeId: \"{rm}\", username: \"u\", password: \"p\") {{ status }} }}"), Denied::Error("Insufficient permissions to create MI users")),
        (format!("mutation {{ deleteMIUser(componentId: \"{mi}\", runtimeId: \"{rm}\", username: \"u\") {{ status }} }}"), Denied::Error("Insufficient permissions to delete MI users")),
    ];
    for (field, _) in artifact_queries() {
        cases.push((format!("{{ {field}({ec}) {page} }}"), Denied::EmptyPage));
    }
    for (doc, denied) in &cases {
        let (status, body) = nobody.post(doc, json!({}));
        assert_eq!(status, 200, "{doc}: {body}");
        let data = &body["data"];
        let field_value = data
            .as_object()
            .and_then(|o| o.values().next().cloned())
            .unwrap_or(Value::Null);
        match denied {
            Denied::EmptyPage => assert_eq!(
                (
                    field_value.get("items").unwrap_or(&field_value["files"]),
                    &field_value["pageInfo"]
                ),
                (&json!([]), &json!({"total": 0, "limit": 0, "offset": 0})),
                "{doc}: {body}"
            ),
            Denied::Null => {
                assert!(body.get("errors").is_none(), "{doc}: {body}");
                assert_eq!(field_value, Value::Null, "{doc}: {body}");
            }
            Denied::EmptyList => assert_eq!(field_value, json!([]), "{doc}: {body}"),
            Denied::Payload(status) => assert_eq!(field_value["status"], *status, "{doc}: {body}"),
            Denied::Error(text) => {
                let message = body["errors"][0]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(text),
                    "{doc}: wanted an error with {text:?}, got {body}"
                );
            }
        }
    }
    // Every root field is covered above (or needs no permission).
    let covered: BTreeSet<String> = cases
        .iter()
        .flat_map(|(d, _)| selections(d).into_iter().map(|s| s.field))
        .collect();
    let schema = doc_schema();
    let open = [
        "environments",
        "environmentByHandler",
        "environmentHandlerAvailability",
        "projectCreationEligibility",
        "projectHandlerAvailability",
        "systemInfo",
        "observabilityMetricsConfig",
        "workflowsByEnvironmentAndComponent",
    ];
    let moesif = [
        "moesifMetricsConfig",
        "moesifDashboardEmbed",
        "moesifLogsConfig",
        "moesifLogsEmbed",
        "moesifApplications",
        "createMoesifDashboards",
        "createMoesifLogsDashboards",
    ];
    for root in ["Query", "Mutation"] {
        for f in schema[root].fields.keys() {
            assert!(
                covered.contains(f) || open.contains(&f.as_str()) || moesif.contains(&f.as_str()),
                "{root}.{f} has no permission case"
            );
        }
    }
    // The open ones answer a caller without roles, without leaking anything.
    let d = nobody.data("{ projectCreationEligibility(orgId: 1, orgHandler: \"default\") { isProjectCreationAllowed } }", json!({}));
    assert_eq!(
        d["projectCreationEligibility"]["isProjectCreationAllowed"],
        false
    );
    let (_, b) = nobody.post(
        "{ moesifMetricsConfig(environmentId: \"1\") { dashboardsCreated } }",
        json!({}),
    );
    assert_eq!(
        b["errors"][0]["message"],
        "Moesif metrics integration is disabled"
    );

    // A Viewer reads but does not act.
    let mut viewer = Gql::new(&w.server, "vic", Some("Viewer"));
    let d = viewer.data(&format!("{{ proxyServicesByEnvironmentAndComponent({ec}) {{ items {{ name }} }} runtime(runtimeId: \"{rm}\") {{ runtimeId }} }}"), json!({}));
    assert_eq!(
        d["proxyServicesByEnvironmentAndComponent"]["items"][0]["name"],
        "StockQuoteProxy"
    );
    assert_eq!(d["runtime"]["runtimeId"], json!(rm));
    let (_, b) = viewer.post(
        &format!("mutation {{ deleteRuntime(runtimeId: \"{rb}\") {{ deleted }} }}"),
        json!({}),
    );
    assert_eq!(
        b["errors"][0]["message"],
        "Access denied: insufficient permissions to delete runtime"
    );
}

#[test]
fn page_totals_follow_registrations_and_deletions() {
    let mut w = world();
    let q = "query($e: String) { runtimes(environmentId: $e, pagination: {limit: 1}) { pageInfo { total } } }";
    let total = |g: &mut Gql, env: &str| {
        g.data(q, json!({"e": env}))["runtimes"]["pageInfo"]["total"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(total(&mut w.admin, &w.env_id), 2);
    // Asked twice (the total is remembered), then a third runtime registers.
    assert_eq!(total(&mut w.admin, &w.env_id), 2);
    let secret = w
        .server
        .secret("dev", Some(("order-service", "order-create")));
    let mut rc = w.server.runtime_client();
    let third = Bridge::new(&secret, Some("node-3"));
    assert_eq!(third.full(&mut rc).status, 200);
    assert_eq!(total(&mut w.admin, &w.env_id), 3);
    // A runtime id cannot move to another environment: the totals stay.
    let prod = w.admin.data(
        "{ environments(type: \"prod\") { items { id } } }",
        json!({}),
    )["environments"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let prod_secret = w
        .server
        .secret("prod", Some(("order-service", "order-create")));
    let mut moved = third.clone();
    moved.secret = prod_secret;
    moved.env = "prod".into();
    let r = moved.full(&mut rc);
    assert_eq!(r.status, 409, "{}", r.json());
    assert_eq!(total(&mut w.admin, &w.env_id), 3);
    assert_eq!(total(&mut w.admin, &prod), 0);
    let d = w.admin.data(
        "mutation($r: String!) { deleteRuntime(runtimeId: $r) { deleted } }",
        json!({"r": w.bi_runtime}),
    );
    assert_eq!(d["deleteRuntime"]["deleted"], true);
    assert_eq!(total(&mut w.admin, &w.env_id), 2);
}

// ---- MI fields, live from a Management API --------------------------------------------

/// Runs `doc` until its field `field` stops `preparing`; that field.
fn settled(g: &mut Gql, doc: &str, variables: Value, field: &str) -> Value {
    let mut out = Value::Null;
    wait_for(field, std::time::Duration::from_secs(30), || {
        let (status, body) = g.post(doc, variables.clone());
        assert_eq!(status, 200, "{doc}: {body}");
        assert!(body.get("errors").is_none(), "{doc}: {body}");
        out = body["data"][field].clone();
        out["preparing"] == false
    });
    out
}

#[test]
fn mi_fields_read_and_write_through_the_management_api() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let mi =
        crate::mi_standin::MiStandIn::start(&server, &secret, "mi-node-1", &["--interval", "1"]);
    let mut g = Gql::new(&server, "root", Some("Super Admin"));
    let mut ids = (String::new(), String::new());
    wait_for("the MI runtime", std::time::Duration::from_secs(30), || {
        let project = g.data(
            "{ projectByHandler(orgId: 1, projectHandler: \"order-service\") { id } }",
            json!({}),
        );
        let Some(p) = project["projectByHandler"]["id"].as_str() else {
            return false;
        };
        let d = g.data(
            "query($p: String!) { component(projectId: $p, componentHandler: \"order-mi\") { id } runtimes(projectId: $p) { items { runtimeId environment { id } } } }",
            json!({"p": p}),
        );
        let item = &d["runtimes"]["items"][0];
        match (
            d["component"]["id"].as_str(),
            item["environment"]["id"].as_str(),
        ) {
            (Some(c), Some(e)) => {
                ids = (c.to_string(), e.to_string());
                item["runtimeId"] == json!(mi.runtime_id)
            }
            _ => false,
        }
    });
    let (component, env) = ids;
    let rt = json!(mi.runtime_id);
    let vars = json!({"r": rt, "c": component, "e": env});

    let d = settled(&mut g, "query($r: String!) { loggersByRuntime(runtimeId: $r) { items { loggerName componentName logLevel logLevelInSync runtimeId } pageInfo { total limit offset } preparing stale retryAfterMs } }", vars.clone(), "loggersByRuntime");
    assert!(
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["loggerName"] == "org-apache-axis2" && l["logLevel"] == "WARN"),
        "{d}"
    );
    assert_eq!(d["retryAfterMs"], 0);
    let d = settled(&mut g, "query($e: String!, $c: String!) { loggersByEnvironmentAndComponent(environmentId: $e, componentId: $c) { items { loggerName componentName logLevel runtimeIds } preparing stale retryAfterMs } }", vars.clone(), "loggersByEnvironmentAndComponent");
    assert!(
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["loggerName"] == "rootLogger" && l["runtimeIds"] == json!([rt])),
        "{d}"
    );
    let d = settled(&mut g, "query($r: String!) { logFilesByRuntime(runtimeId: $r, searchKey: \"wso2\", pagination: {limit: 1}) { count files { fileName size } pageInfo { total limit offset } preparing stale retryAfterMs } }", vars.clone(), "logFilesByRuntime");
    assert_eq!(
        (d["count"].clone(), d["pageInfo"].clone()),
        (json!(2), json!({"total": 2, "limit": 1, "offset": 0})),
        "{d}"
    );
    let d = settled(&mut g, "query($r: String!) { logFileContent(runtimeId: $r, fileName: \"wso2error.log\") { content preparing stale retryAfterMs } }", vars.clone(), "logFileContent");
    assert!(
        d["content"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{d}"
    );
    let d = settled(&mut g, "query($r: String!) { registryDirectory(runtimeId: $r, path: \"registry/governance/endpoints\") { count items { name mediaType isDirectory properties { name value } } preparing stale retryAfterMs } }", vars.clone(), "registryDirectory");
    assert_eq!(d["items"][0]["name"], "backend.xml", "{d}");
    let d = settled(&mut g, "query($r: String!) { registryFileContent(runtimeId: $r, path: \"registry/config/app.properties\") { content preparing stale retryAfterMs } }", vars.clone(), "registryFileContent");
    assert_eq!(d["content"], "timeout=30\nretries=3\n");
    let d = settled(&mut g, "query($r: String!) { registryResourceProperties(runtimeId: $r, path: \"registry/governance/endpoints/backend.xml\") { count properties { name value } preparing stale retryAfterMs } }", vars.clone(), "registryResourceProperties");
    assert_eq!(d["count"], 2, "{d}");
    let d = settled(&mut g, "query($r: String!, $c: String!) { getMIUsers(componentId: $c, runtimeId: $r) { items { username domain isAdmin } pageInfo { total } preparing stale retryAfterMs } }", vars.clone(), "getMIUsers");
    assert_eq!(d["items"][0]["username"], "admin", "{d}");
    let d = settled(&mut g, "query($c: String!, $r: String!) { artifactSourceByComponent(componentId: $c, artifactType: \"RestApi\", artifactName: \"HealthcareAPI\", runtimeId: $r) { content preparing stale retryAfterMs } }", vars.clone(), "artifactSourceByComponent");
    assert!(
        d["content"].as_str().unwrap().contains("HealthcareAPI"),
        "{d}"
    );
    let d = settled(&mut g, "query($c: String!) { localEntryValueByComponent(componentId: $c, entryName: \"ServiceConfig\") { content preparing stale retryAfterMs } }", vars.clone(), "localEntryValueByComponent");
    assert!(d["content"].as_str().unwrap().contains("timeout=30"), "{d}");
    let d = settled(&mut g, "query($c: String!) { messageProcessorOverviewByComponent(componentId: $c, processorName: \"OrderForwarder\") { parameters { name value } preparing stale retryAfterMs } }", vars.clone(), "messageProcessorOverviewByComponent");
    assert!(
        d["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "name" && p["value"] == "OrderForwarder"),
        "{d}"
    );

    // Writes: an MI user added and removed, polled by requestId as the R-NEW console does.
    let add = "mutation($c: String!, $r: String!, $q: String) { addMIUser(componentId: $c, runtimeId: $r, username: \"ops\", password: \"ops-password-1\", requestId: $q) { username status preparing stale retryAfterMs } }";
    let rid = json!({"c": component, "r": rt, "q": "add-ops-1"});
    let d = settled(&mut g, add, rid.clone(), "addMIUser");
    assert_eq!(
        (d["username"].clone(), d["status"].clone()),
        (json!("ops"), json!("Added")),
        "{d}"
    );
    // Re-sent with the same requestId: the same operation, not a second user.
    let again = g.data(add, rid);
    assert_eq!(again["addMIUser"]["status"], "Added");
    let posts: Vec<String> = std::fs::read_to_string(&mi.calls_file)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"POST\"") && l.contains("/management/users"))
        .map(str::to_string)
        .collect();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let del = "mutation($c: String!, $r: String!) { deleteMIUser(componentId: $c, runtimeId: $r, username: \"ops\", requestId: \"del-ops-1\") { username status preparing } }";
    let d = settled(
        &mut g,
        del,
        json!({"c": component, "r": rt}),
        "deleteMIUser",
    );
    assert_eq!(d["status"], "Deleted", "{d}");

    // A logger level through the desired state: converges on the runtime.
    let d = g.data("mutation($r: String!) { updateLogLevel(input: {runtimeIds: [$r], componentType: MI, loggerName: \"org-apache-axis2\", logLevel: DEBUG}) { success message } }", json!({"r": rt}));
    assert_eq!(d["updateLogLevel"]["success"], true, "{d}");
    wait_for(
        "the level on the runtime",
        std::time::Duration::from_secs(30),
        || {
            std::fs::read_to_string(&mi.calls_file)
                .unwrap()
                .lines()
                .any(|l| {
                    l.contains("PATCH") && l.contains("org-apache-axis2") && l.contains("DEBUG")
                })
        },
    );
    let d = g.data("mutation($c: String!) { triggerArtifact(input: {componentId: $c, taskName: \"InventorySyncTask\"}) { status details } }", json!({"c": component}));
    assert_eq!(d["triggerArtifact"]["status"], "SUCCESS", "{d}");
}

// ---- the push channel (§1.5) ------------------------------------------------------------

#[test]
fn runtime_status_pushes_icp_frames_over_a_websocket() {
    let mut w = world();
    let path = format!(
        "/runtime-status?environmentId={}&token={}",
        w.env_id, w.admin.token
    );
    let ws_headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    // Refused without a valid token, and without the handshake.
    let bad = format!("/runtime-status?environmentId={}&token=nope", w.env_id);
    match w.server.open_sse(&bad, &ws_headers) {
        Opened::Refused(status, _) => assert_eq!(status, 401),
        Opened::Stream(_) => panic!("a bad token opened the channel"),
    }
    match w.server.open_sse(&path, &[]) {
        Opened::Refused(status, body) => assert_eq!(status, 400, "{body}"),
        Opened::Stream(_) => panic!("no handshake opened the channel"),
    }
    let Opened::Stream(mut ws) = w.server.open_sse(&path, &ws_headers) else {
        panic!("the handshake was refused");
    };
    // RFC 6455's own example key and answer.
    assert_eq!(
        ws.header("sec-websocket-accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(ws.header("upgrade").as_deref(), Some("websocket"));
    // A logger level set through GraphQL arrives as ICP's frame.
    let d = w.admin.data(
        "mutation($r: String!) { updateLogLevel(input: {runtimeIds: [$r], componentName: \"acme/orders\", logLevel: DEBUG}) { success } }",
        json!({"r": w.bi_runtime}),
    );
    assert_eq!(d["updateLogLevel"]["success"], true);
    let frame = loop {
        let (opcode, payload) = ws
            .ws_message(std::time::Duration::from_secs(10))
            .expect("a frame");
        if opcode == 1 {
            break serde_json::from_slice::<Value>(&payload).unwrap();
        }
        assert_eq!(opcode, 9, "only pings between messages");
    };
    assert_eq!(
        frame,
        json!({
            "eventType": "LOG_LEVEL_CHANGE",
            "environmentId": w.env_id,
            "environmentName": "dev",
            "runtimeId": w.bi_runtime,
            "loggerName": "acme/orders",
            "logLevel": "DEBUG",
        })
    );
}

#[test]
fn a_proxys_wsdl_is_fetched_from_the_runtime_itself() {
    use std::io::{Read, Write};
    let server = TestServer::start(&[]);
    // The runtime's service port: plain HTTP serving the WSDL.
    let wsdl = "<wsdl:definitions name=\"StockQuoteProxy\"/>";
    let service = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let service_port = service.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut tcp in service.incoming().map_while(Result::ok) {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tcp.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let ok =
                String::from_utf8_lossy(&head).starts_with("GET /services/StockQuoteProxy?wsdl ");
            let body = if ok { wsdl } else { "wrong request" };
            let _ = write!(
                tcp,
                "HTTP/1.1 {} OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                if ok { 200 } else { 400 },
                body.len()
            );
        }
    });
    // Its Management API describes the proxy with that URL.
    let detail = format!(
        "{{\"name\":\"StockQuoteProxy\",\"wsdl1_1\":\"http://127.0.0.1:{service_port}/services/StockQuoteProxy?wsdl\"}}"
    );
    let answer: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{detail}",
            detail.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let mgmt_port = crate::mi_control::fake_management_api(answer, false);
    let mut mi = MiRuntime::new(
        &server.secret("dev", None),
        "dev",
        "order-service",
        "order-mi",
        "mi-wsdl",
    );
    mi.set_runtime_port(json!(mgmt_port.to_string()));
    assert_eq!(mi.full(&mut server.runtime_client()).status, 200);
    let mut g = Gql::new(&server, "root", Some("Super Admin"));
    let p = g.data(
        "{ projectByHandler(orgId: 1, projectHandler: \"order-service\") { id } }",
        json!({}),
    )["projectByHandler"]["id"]
        .clone();
    let c = g.data(
        "query($p: String!) { component(projectId: $p, componentHandler: \"order-mi\") { id } }",
        json!({"p": p}),
    )["component"]["id"]
        .clone();
    let d = settled(
        &mut g,
        "query($c: String!) { artifactWsdlByComponent(componentId: $c, artifactType: \"proxy-service\", artifactName: \"StockQuoteProxy\") { content preparing stale retryAfterMs } }",
        json!({"c": c}),
        "artifactWsdlByComponent",
    );
    assert_eq!(d["content"], wsdl, "{d}");
}
