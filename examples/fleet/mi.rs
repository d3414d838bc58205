//! Micro Integrator runtimes as `--kind mi` simulates them, mirroring MI's
//! agent as `shared/protocol/MI.md` describes it and
//! `shared/conformance/mi.py` (the stand-in written from MI's source)
//! behaves: what one node has deployed, the full and delta heartbeats it
//! builds from that, its hash, and the token it mints.
//!
//! The nodes are shared with the fake Management API (`mi_mgmt.rs`): a
//! management call changes a state here, which changes the hash of the
//! node's next delta heartbeat, which makes icpd ask for a full heartbeat
//! that reports the new state. That is the only way MI reports anything,
//! and so the way an MI fleet converges on a desired state.
//!
//! What is deployed is the same on every node (replicas of one
//! integration): per node 3 APIs with resources, 3 proxy services (both
//! scaled by `--mi-artifacts`), 2 endpoints, 1 inbound endpoint, 2
//! sequences, 1 task, 1 sequence template, 1 message store and 1
//! processor, 1 local entry, 1 data service, 2 carbon apps, 1 data source,
//! 1 connector, 1 registry resource. Names live once in a [`Layout`];
//! a node holds only the states that management calls can change.

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Instant;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::md5::md5;

/// The heartbeat version MI sends.
const HEARTBEAT_VERSION: &str = "v1.0";

/// The MI version the simulated nodes report.
pub const MI_VERSION: &str = "4.5.0";

/// MI's management port when `[server] offset` is unset: what a node
/// reports when the fleet serves no Management API (`--mi-mgmt` off).
pub const MGMT_DEFAULT_PORT: u16 = 9164;

/// MI's default `heartbeat_interval`, in seconds.
pub const INTERVAL_S: f64 = 10.0;

/// MI's default `jwt_expiry_seconds`, and how long before expiry it mints a
/// new token (so one token serves about 55 minutes).
const TOKEN_LIFETIME_S: i64 = 3600;
const TOKEN_REUSE_MARGIN_S: i64 = 300;

/// MI refuses to start its heartbeat service with shorter key material.
const MIN_KEY_MATERIAL: usize = 32;

/// The CApps, and which artifacts they carry (see [`carbon_app`]).
const CAPP: &str = "HealthcareCompositeExporter";
const CAPP_2: &str = "OrderServicesApp";

/// The artifact kinds whose state a management call can change, in the
/// heartbeat's order. The other seven lists are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Proxy,
    Endpoint,
    Inbound,
    Sequence,
    Task,
    Template,
    Processor,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Api,
        Kind::Proxy,
        Kind::Endpoint,
        Kind::Inbound,
        Kind::Sequence,
        Kind::Task,
        Kind::Template,
        Kind::Processor,
    ];

    /// The Management API collection (`/management/<segment>`).
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Api => "apis",
            Kind::Proxy => "proxy-services",
            Kind::Endpoint => "endpoints",
            Kind::Inbound => "inbound-endpoints",
            Kind::Sequence => "sequences",
            Kind::Task => "tasks",
            Kind::Template => "templates",
            Kind::Processor => "message-processors",
        }
    }

    pub fn from_segment(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.segment() == segment)
    }

    /// Whether MI can enable and disable this kind (`status` active/inactive).
    pub fn has_status(self) -> bool {
        matches!(
            self,
            Kind::Proxy | Kind::Endpoint | Kind::Inbound | Kind::Task | Kind::Processor
        )
    }

    /// Whether MI can switch tracing and statistics of this kind.
    pub fn has_aspects(self) -> bool {
        matches!(
            self,
            Kind::Api
                | Kind::Proxy
                | Kind::Endpoint
                | Kind::Inbound
                | Kind::Sequence
                | Kind::Template
        )
    }
}

/// What a management call changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    State,
    Tracing,
    Statistics,
}

impl Field {
    /// Whether the heartbeat reports it for `kind`, so that changing it
    /// changes the hash (templates report statistics only; APIs and
    /// sequences have no state).
    fn reported(self, kind: Kind) -> bool {
        match (kind, self) {
            (Kind::Template, Field::Statistics) => true,
            (Kind::Template, _) => false,
            (_, Field::State) => kind.has_status(),
            _ => kind.has_aspects(),
        }
    }
}

/// The names of what every node has deployed, shared by all nodes.
pub struct Layout {
    names: Vec<Vec<String>>,
}

impl Layout {
    /// `scale` proxy services and `scale` APIs (at least 1), the rest fixed.
    pub fn new(scale: usize) -> Layout {
        let scale = scale.max(1);
        let scaled = |fixed: &[&str], extra: &dyn Fn(usize) -> String| -> Vec<String> {
            (0..scale)
                .map(|i| fixed.get(i).map_or_else(|| extra(i), |n| n.to_string()))
                .collect()
        };
        let fixed = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        let names = Kind::ALL
            .iter()
            .map(|k| match k {
                Kind::Api => scaled(&["HealthcareAPI", "OrderAPI", "InventoryAPI"], &|i| {
                    format!("Api{i:04}")
                }),
                Kind::Proxy => scaled(
                    &["StockQuoteProxy", "LegacyEchoProxy", "OrderProxy"],
                    &|i| format!("Proxy{i:04}"),
                ),
                Kind::Endpoint => fixed(&["StockQuoteEP", "HospitalEP"]),
                Kind::Inbound => fixed(&["OrderHttpInbound"]),
                Kind::Sequence => fixed(&["OrderProcessingSeq", "CommonFaultSeq"]),
                Kind::Task => fixed(&["InventorySyncTask"]),
                Kind::Template => fixed(&["LogAndRespondTemplate"]),
                Kind::Processor => fixed(&["OrderForwarder"]),
            })
            .collect();
        Layout { names }
    }

    pub fn names(&self, kind: Kind) -> &[String] {
        &self.names[kind as usize]
    }

    pub fn find(&self, kind: Kind, name: &str) -> Option<usize> {
        self.names(kind).iter().position(|n| n == name)
    }
}

/// The changeable states of one artifact.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    pub enabled: bool,
    pub tracing: bool,
    pub statistics: bool,
}

impl Flags {
    fn get(&self, field: Field) -> bool {
        match field {
            Field::State => self.enabled,
            Field::Tracing => self.tracing,
            Field::Statistics => self.statistics,
        }
    }

    fn set(&mut self, field: Field, value: bool) {
        match field {
            Field::State => self.enabled = value,
            Field::Tracing => self.tracing = value,
            Field::Statistics => self.statistics = value,
        }
    }
}

/// A state change a management call made, as recorded for the converge check.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub at: Instant,
    pub kind: Kind,
    pub index: usize,
    pub field: Field,
    pub value: bool,
    /// The node's generation after the change.
    pub generation: u64,
}

/// Records kept per node: enough for a converge check, bounded for a
/// long run with a control plane that keeps calling.
const RECORDS_KEPT: usize = 256;

/// One MI node: its identity, what it reports, and its deployed state.
pub struct Node {
    pub runtime_id: String,
    /// `icp_config.runtime`, the node name.
    pub name: String,
    pub environment: String,
    pub project: String,
    pub integration: String,
    /// `runtimeHostname` (a distinct loopback address per node).
    pub host: Ipv4Addr,
    /// `runtimePort`.
    pub port: u16,
    /// The secret's key id and key material, which the Management API
    /// checks ICP's token against.
    pub key_id: String,
    pub material: String,
    flags: Vec<Vec<Flags>>,
    /// Logger name, component and level (not in the heartbeat, not hashed).
    pub loggers: Vec<(String, String, String)>,
    /// Bumped by every change the heartbeat reports.
    generation: u64,
    /// The hash of `generation`, computed once per generation.
    hash: Option<(u64, String)>,
    /// State changes made by management calls, in order.
    pub changes: Vec<Change>,
    /// When a full heartbeat was acknowledged, and the generation it reported.
    pub reports: Vec<(Instant, u64)>,
}

/// The identity of a node, from the fleet's runtime list.
pub struct Identity {
    pub runtime_id: String,
    pub name: String,
    pub environment: String,
    pub project: String,
    pub integration: String,
    pub host: Ipv4Addr,
    pub port: u16,
    pub secret: String,
}

impl Node {
    /// A node with everything enabled, tracing and statistics off.
    pub fn new(layout: &Layout, id: Identity) -> Node {
        let (key_id, material) = split_secret(&id.secret);
        let flags = layout
            .names
            .iter()
            .map(|names| {
                vec![
                    Flags {
                        enabled: true,
                        tracing: false,
                        statistics: false
                    };
                    names.len()
                ]
            })
            .collect();
        let logger = |n: &str, c: &str, l: &str| (n.to_string(), c.to_string(), l.to_string());
        Node {
            runtime_id: id.runtime_id,
            name: id.name,
            environment: id.environment,
            project: id.project,
            integration: id.integration,
            host: id.host,
            port: id.port,
            key_id,
            material,
            flags,
            loggers: vec![
                logger("rootLogger", "", "INFO"),
                logger("org-apache-synapse", "org.apache.synapse", "INFO"),
                logger("org-apache-axis2", "org.apache.axis2", "WARN"),
            ],
            generation: 0,
            hash: None,
            changes: Vec::new(),
            reports: Vec::new(),
        }
    }

    pub fn flags(&self, kind: Kind, index: usize) -> Flags {
        self.flags[kind as usize][index]
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Sets one state as a management call does; returns whether it
    /// changed. A change the heartbeat reports moves the generation (and
    /// so the hash) and is recorded.
    pub fn set(&mut self, kind: Kind, index: usize, field: Field, value: bool) -> bool {
        let f = &mut self.flags[kind as usize][index];
        if f.get(field) == value {
            return false;
        }
        f.set(field, value);
        if field.reported(kind) {
            self.generation += 1;
            if self.changes.len() < RECORDS_KEPT {
                self.changes.push(Change {
                    at: Instant::now(),
                    kind,
                    index,
                    field,
                    value,
                    generation: self.generation,
                });
            }
        }
        true
    }

    /// Records an acknowledged full heartbeat that reported `generation`.
    pub fn reported(&mut self, at: Instant, generation: u64) {
        if self.reports.len() < RECORDS_KEPT {
            self.reports.push((at, generation));
        }
    }

    /// `runtimeHash`: base64 (standard, padded) of MD5 over the compact
    /// JSON of the full payload without `runtimeHash`, `timestamp` and
    /// nodeInfo's four memory figures, in MI's member order (serde writes
    /// struct fields in declaration order, compactly, non-ASCII as is,
    /// as Gson's `JsonElement.toString()` does). Real MD5, so the value is
    /// the one MI would send for the same payload; icpd treats it as opaque.
    pub fn hash(&mut self, layout: &Layout) -> String {
        if let Some((g, h)) = &self.hash {
            if *g == self.generation {
                return h.clone();
            }
        }
        let text = serde_json::to_string(&self.payload(layout, None, false))
            .expect("a payload serializes");
        let h = B64.encode(md5(text.as_bytes()));
        self.hash = Some((self.generation, h.clone()));
        h
    }

    /// `POST /icp/deltaHeartbeat`'s body.
    pub fn delta_body(&mut self, layout: &Layout) -> Vec<u8> {
        let hash = self.hash(layout);
        serde_json::to_vec(&serde_json::json!({
            "heartbeatVersion": HEARTBEAT_VERSION,
            "runtimeId": self.runtime_id,
            "runtimeHash": hash,
            "timestamp": crate::sim::timestamp(),
        }))
        .expect("a delta serializes")
    }

    /// `POST /icp/heartbeat`'s body, and the generation it reports.
    pub fn full_body(&mut self, layout: &Layout) -> (Vec<u8>, u64) {
        let hash = self.hash(layout);
        let body = serde_json::to_vec(&self.payload(layout, Some(&hash), true))
            .expect("a payload serializes");
        (body, self.generation)
    }

    /// The full payload; without `hash` (and `volatile`) it is the text
    /// the hash is computed over.
    fn payload<'a>(
        &'a self,
        layout: &'a Layout,
        hash: Option<&'a str>,
        volatile: bool,
    ) -> Full<'a> {
        let host = self.host.to_string();
        Full {
            heartbeat_version: HEARTBEAT_VERSION,
            runtime_id: &self.runtime_id,
            runtime: &self.name,
            runtime_type: "MI",
            status: "RUNNING",
            environment: &self.environment,
            project: &self.project,
            component: &self.integration,
            version: MI_VERSION,
            runtime_port: self.port.to_string(),
            node_info: NodeInfo::new(volatile),
            artifacts: self.artifacts(layout, &host),
            runtime_hostname: host,
            runtime_hash: hash,
            timestamp: volatile.then(crate::sim::timestamp),
        }
    }

    fn artifacts<'a>(&'a self, layout: &'a Layout, host: &str) -> Lists<'a> {
        let on = |b: bool| if b { "enabled" } else { "disabled" };
        let each = |kind: Kind| {
            layout
                .names(kind)
                .iter()
                .enumerate()
                .map(move |(i, n)| (i, n.as_str(), self.flags(kind, i)))
        };
        let urls = |suffix: &str| {
            vec![
                format!("http://{host}:8290{suffix}"),
                format!("https://{host}:8253{suffix}"),
            ]
        };
        Lists {
            apis: each(Kind::Api)
                .map(|(i, name, f)| {
                    let context = match i {
                        0 => "/healthcare".to_string(),
                        1 => "/orders".to_string(),
                        2 => "/inventory".to_string(),
                        _ => format!("/api{i:04}"),
                    };
                    let urls = urls(&context);
                    Api {
                        name,
                        context,
                        version: "1.0.0",
                        url: urls[0].clone(),
                        urls,
                        kind: "API",
                        carbon_app: carbon_app(Kind::Api, i),
                        tracing: on(f.tracing),
                        statistics: on(f.statistics),
                        resources: if i == 0 {
                            vec![
                                Resource {
                                    path: "/doctors/{specialty}",
                                    methods: "GET",
                                },
                                Resource {
                                    path: "/appointments",
                                    methods: "POST,PUT",
                                },
                            ]
                        } else {
                            vec![
                                Resource {
                                    path: "/",
                                    methods: "GET",
                                },
                                Resource {
                                    path: "/{id}",
                                    methods: "GET,DELETE",
                                },
                            ]
                        },
                    }
                })
                .collect(),
            proxy_services: each(Kind::Proxy)
                .map(|(i, name, f)| Proxy {
                    name,
                    kind: "ProxyService",
                    state: on(f.enabled),
                    carbon_app: carbon_app(Kind::Proxy, i),
                    tracing: on(f.tracing),
                    statistics: on(f.statistics),
                    endpoints: urls(&format!("/services/{name}")),
                })
                .collect(),
            endpoints: each(Kind::Endpoint)
                .map(|(i, name, f)| Endpoint {
                    name,
                    kind: if i == 0 {
                        "AddressEndpoint"
                    } else {
                        "HTTPEndpoint"
                    },
                    carbon_app: carbon_app(Kind::Endpoint, i),
                    state: on(f.enabled),
                    tracing: on(f.tracing),
                    statistics: on(f.statistics),
                    attributes: if i == 0 {
                        vec![Attribute {
                            name: "Address",
                            value: "http://localhost:9000/services/SimpleStockQuoteService",
                        }]
                    } else {
                        vec![
                            Attribute {
                                name: "Method",
                                value: "get",
                            },
                            Attribute {
                                name: "URI Template",
                                value: "http://localhost:9090/{uri.var.hospital}/categories",
                            },
                        ]
                    },
                })
                .collect(),
            inbound_endpoints: each(Kind::Inbound)
                .map(|(_, name, f)| Inbound {
                    name,
                    protocol: "http",
                    state: on(f.enabled),
                    statistics: on(f.statistics),
                    tracing: on(f.tracing),
                    sequence: "OrderProcessingSeq",
                    on_error: "CommonFaultSeq",
                })
                .collect(),
            sequences: each(Kind::Sequence)
                .map(|(i, name, f)| Sequence {
                    name,
                    kind: "Sequence",
                    carbon_app: carbon_app(Kind::Sequence, i),
                    tracing: on(f.tracing),
                    statistics: on(f.statistics),
                })
                .collect(),
            tasks: each(Kind::Task)
                .map(|(_, name, f)| Task {
                    name,
                    state: on(f.enabled),
                    group: "synapse.simple.quartz",
                    class: "org.apache.synapse.startup.tasks.MessageInjector",
                })
                .collect(),
            templates: each(Kind::Template)
                .map(|(_, name, f)| Template {
                    name,
                    kind: "sequence",
                    statistics: on(f.statistics),
                })
                .collect(),
            message_stores: vec![MessageStore {
                name: "OrderStore",
                kind: "InMemoryStore",
                size: 3,
            }],
            message_processors: each(Kind::Processor)
                .map(|(_, name, f)| Processor {
                    name,
                    kind: "ScheduledMessageForwardingProcessor",
                    state: on(f.enabled),
                    message_store: "OrderStore",
                })
                .collect(),
            local_entries: vec![LocalEntry {
                name: "ServiceConfig",
                carbon_app: CAPP,
                kind: "Inline Text",
            }],
            data_services: vec![DataService {
                name: "CustomerDataService",
                kind: "DataService",
                carbon_app: CAPP,
                description: "Customer records",
                configs: ["CustomerDS"],
                operation_count: 2,
                query_count: 2,
            }],
            carbon_apps: vec![
                CarbonApp {
                    name: CAPP,
                    runtime_id: &self.runtime_id,
                    version: "1.0.0",
                    status: "active",
                    artifacts: capp_artifacts(layout, CAPP),
                },
                CarbonApp {
                    name: CAPP_2,
                    runtime_id: &self.runtime_id,
                    version: "1.0.0",
                    status: "active",
                    artifacts: capp_artifacts(layout, CAPP_2),
                },
            ],
            data_sources: vec![DataSource {
                name: "CustomerDS",
                kind: "RDBMS",
                driver: "org.h2.Driver",
                url: "jdbc:h2:./repository/database/customers",
                has_username: true,
            }],
            connectors: vec![Connector {
                name: "http",
                package: "org.wso2.carbon.connector",
                description: "HTTP connector",
                status: "enabled",
            }],
            registry_resources: vec![Registry {
                name: "config",
                kind: "directory",
            }],
        }
    }
}

/// The CApp an artifact came in, if any: the first API, proxy and both
/// endpoints and the first sequence in [`CAPP`]; the second API and the
/// third proxy in [`CAPP_2`]; the rest (and everything `--mi-artifacts`
/// adds) deployed on their own.
fn carbon_app(kind: Kind, index: usize) -> Option<&'static str> {
    match (kind, index) {
        (Kind::Api, 0) | (Kind::Proxy, 0) | (Kind::Endpoint, _) | (Kind::Sequence, 0) => Some(CAPP),
        (Kind::Api, 1) | (Kind::Proxy, 2) => Some(CAPP_2),
        _ => None,
    }
}

/// A CApp's `artifacts` list: what [`carbon_app`] places in it, plus the
/// fixed local entry and data service of the first one.
fn capp_artifacts<'a>(layout: &'a Layout, capp: &str) -> Vec<CappArtifact<'a>> {
    let mut out = Vec::new();
    for (kind, kind_name) in [
        (Kind::Api, "api"),
        (Kind::Proxy, "proxy-service"),
        (Kind::Endpoint, "endpoint"),
        (Kind::Sequence, "sequence"),
    ] {
        for (i, name) in layout.names(kind).iter().enumerate() {
            if carbon_app(kind, i) == Some(capp) {
                out.push(CappArtifact {
                    name,
                    kind: kind_name,
                });
            }
        }
    }
    if capp == CAPP {
        out.push(CappArtifact {
            name: "ServiceConfig",
            kind: "local-entry",
        });
        out.push(CappArtifact {
            name: "CustomerDataService",
            kind: "dataservice",
        });
    }
    out
}

// The payload, member for member in MI's order (ICPHeartBeatComponent,
// as mi.py builds it). serde serializes struct fields in declaration
// order, which is what the hash needs.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Full<'a> {
    heartbeat_version: &'static str,
    runtime_id: &'a str,
    runtime: &'a str,
    runtime_type: &'static str,
    status: &'static str,
    environment: &'a str,
    project: &'a str,
    component: &'a str,
    version: &'static str,
    runtime_hostname: String,
    /// A string, as MI sends it.
    runtime_port: String,
    node_info: NodeInfo,
    artifacts: Lists<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<Value>,
}

/// The 13 members of `nodeInfo`; the four memory figures are left out of
/// the hashed text.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo {
    platform_name: &'static str,
    platform_version: &'static str,
    platform_home: &'static str,
    os_name: &'static str,
    os_version: &'static str,
    os_arch: &'static str,
    java_version: &'static str,
    carbon_home: &'static str,
    java_vendor: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    free_memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used_memory: Option<u64>,
}

impl NodeInfo {
    fn new(memory: bool) -> NodeInfo {
        const MIB: u64 = 1024 * 1024;
        let total = 512 * MIB;
        // Varies from heartbeat to heartbeat, as a JVM's free memory does.
        let free = (100 + u64::from(chrono::Utc::now().timestamp_subsec_micros()) % 200) * MIB;
        NodeInfo {
            platform_name: "WSO2 Micro Integrator",
            platform_version: MI_VERSION,
            platform_home: "/opt/wso2mi-4.5.0",
            os_name: "Linux",
            os_version: "6.1.0",
            os_arch: "amd64",
            java_version: "21.0.5",
            carbon_home: "/opt/wso2mi-4.5.0",
            java_vendor: "Eclipse Adoptium",
            total_memory: memory.then_some(total),
            free_memory: memory.then_some(free),
            max_memory: memory.then_some(1024 * MIB),
            used_memory: memory.then_some(total - free),
        }
    }
}

/// The 15 artifact lists, always all present.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Lists<'a> {
    apis: Vec<Api<'a>>,
    proxy_services: Vec<Proxy<'a>>,
    endpoints: Vec<Endpoint<'a>>,
    inbound_endpoints: Vec<Inbound<'a>>,
    sequences: Vec<Sequence<'a>>,
    tasks: Vec<Task<'a>>,
    templates: Vec<Template<'a>>,
    message_stores: Vec<MessageStore>,
    message_processors: Vec<Processor<'a>>,
    local_entries: Vec<LocalEntry>,
    data_services: Vec<DataService>,
    carbon_apps: Vec<CarbonApp<'a>>,
    data_sources: Vec<DataSource>,
    connectors: Vec<Connector>,
    registry_resources: Vec<Registry>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Api<'a> {
    name: &'a str,
    context: String,
    version: &'static str,
    url: String,
    urls: Vec<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    carbon_app: Option<&'static str>,
    tracing: &'static str,
    statistics: &'static str,
    resources: Vec<Resource>,
}

#[derive(Serialize)]
struct Resource {
    path: &'static str,
    /// One comma-joined string.
    methods: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Proxy<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    carbon_app: Option<&'static str>,
    tracing: &'static str,
    statistics: &'static str,
    endpoints: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    carbon_app: Option<&'static str>,
    state: &'static str,
    tracing: &'static str,
    statistics: &'static str,
    attributes: Vec<Attribute>,
}

#[derive(Serialize)]
struct Attribute {
    name: &'static str,
    value: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inbound<'a> {
    name: &'a str,
    protocol: &'static str,
    state: &'static str,
    statistics: &'static str,
    tracing: &'static str,
    sequence: &'static str,
    on_error: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sequence<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    carbon_app: Option<&'static str>,
    tracing: &'static str,
    statistics: &'static str,
}

#[derive(Serialize)]
struct Task<'a> {
    name: &'a str,
    state: &'static str,
    group: &'static str,
    class: &'static str,
}

/// Sequence templates report statistics only; no template reports tracing.
#[derive(Serialize)]
struct Template<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    statistics: &'static str,
}

#[derive(Serialize)]
struct MessageStore {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    size: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Processor<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    state: &'static str,
    message_store: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalEntry {
    name: &'static str,
    carbon_app: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataService {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    carbon_app: &'static str,
    description: &'static str,
    configs: [&'static str; 1],
    operation_count: u32,
    query_count: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CarbonApp<'a> {
    name: &'static str,
    runtime_id: &'a str,
    version: &'static str,
    status: &'static str,
    artifacts: Vec<CappArtifact<'a>>,
}

#[derive(Serialize)]
struct CappArtifact<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataSource {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    driver: &'static str,
    url: &'static str,
    has_username: bool,
}

#[derive(Serialize)]
struct Connector {
    name: &'static str,
    package: &'static str,
    description: &'static str,
    status: &'static str,
}

#[derive(Serialize)]
struct Registry {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The whole simulated MI fleet: the shared layout and every node, each
/// behind its own lock (a load thread and a management call may touch the
/// same node at once).
pub struct Fleet {
    pub layout: Layout,
    pub nodes: Vec<Mutex<Node>>,
}

impl Fleet {
    /// The node a management call to `ip` is for.
    pub fn node_at(&self, ip: Ipv4Addr) -> Option<&Mutex<Node>> {
        self.nodes.get(host_index(ip)?)
    }
}

/// A distinct loopback address for node `i`: 127.A.B.C with each of A, B
/// and C in 1..=254 (Linux routes all of 127/8 to `lo`), so 16 million
/// nodes fit and none is 127.0.0.1, where icpd listens.
pub fn loopback(i: usize) -> Ipv4Addr {
    let (a, rest) = (i / (254 * 254), i % (254 * 254));
    Ipv4Addr::new(
        127,
        1 + a as u8,
        1 + (rest / 254) as u8,
        1 + (rest % 254) as u8,
    )
}

/// The inverse of [`loopback`].
pub fn host_index(ip: Ipv4Addr) -> Option<usize> {
    let [n, a, b, c] = ip.octets();
    if n != 127 || [a, b, c].iter().any(|o| *o == 0 || *o == 255) {
        return None;
    }
    Some((usize::from(a) - 1) * 254 * 254 + (usize::from(b) - 1) * 254 + usize::from(c) - 1)
}

/// Splits `icp_config.secret` as MI does: at the first `.` when that dot
/// is neither first nor last; otherwise the key id is empty and the whole
/// string is the key material.
pub fn split_secret(secret: &str) -> (String, String) {
    match secret.find('.') {
        Some(i) if i > 0 && i < secret.len() - 1 => {
            (secret[..i].to_string(), secret[i + 1..].to_string())
        }
        _ => (String::new(), secret.to_string()),
    }
}

/// A token as MI mints it (nimbus-jose-jwt in `HMACJWTTokenGenerator`):
/// header `{"kid","alg":"HS256"}` without `typ`; claims iss, aud (one
/// string), exp, iat, scope; no nbf, no sub, no jti.
pub fn mint(key_id: &str, material: &str, now_s: i64, lifetime_s: i64) -> String {
    let header = format!(r#"{{"kid":{},"alg":"HS256"}}"#, Value::from(key_id));
    let claims = format!(
        r#"{{"iss":"icp-runtime-jwt-issuer","aud":"icp-server","exp":{},"iat":{now_s},"scope":"runtime_agent"}}"#,
        now_s + lifetime_s
    );
    let signing_input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, material.as_bytes());
    let sig = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(sig.as_ref()))
}

/// MI's heartbeat token: minted once and reused until five minutes before
/// it expires (so for about 55 minutes).
pub struct Token {
    key_id: String,
    material: String,
    /// `Bearer <token>` and its expiry (Unix seconds).
    current: Option<(String, i64)>,
}

impl Token {
    /// Refuses key material shorter than 32 bytes, as MI does (it then
    /// never starts its heartbeat service).
    pub fn new(secret: &str) -> Result<Token, String> {
        let (key_id, material) = split_secret(secret);
        if material.len() < MIN_KEY_MATERIAL {
            return Err(format!(
                "HS256 requires a {MIN_KEY_MATERIAL}-byte key, found {} bytes",
                material.len()
            ));
        }
        Ok(Token {
            key_id,
            material,
            current: None,
        })
    }

    /// The `Authorization` header value at `now_s`.
    pub fn bearer(&mut self, now_s: i64) -> &str {
        let stale = self
            .current
            .as_ref()
            .is_none_or(|(_, exp)| now_s >= exp - TOKEN_REUSE_MARGIN_S);
        if stale {
            let token = mint(&self.key_id, &self.material, now_s, TOKEN_LIFETIME_S);
            self.current = Some((format!("Bearer {token}"), now_s + TOKEN_LIFETIME_S));
        }
        self.current.as_ref().map_or("", |(b, _)| b.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(layout: &Layout) -> Node {
        Node::new(
            layout,
            Identity {
                runtime_id: "3f6d0f0e-7c4e-4d8e-9a43-6a1b2c3d4e5f".into(),
                name: "mi-node-1".into(),
                environment: "dev".into(),
                project: "fleet".into(),
                integration: "fleet-mi".into(),
                host: loopback(0),
                port: 9164,
                secret: format!("abcd1234.{}", "k".repeat(44)),
            },
        )
    }

    /// The full payload has MI's shape: the 15 lists, nodeInfo's 13
    /// members, runtimePort a string, and a hash that moves with a
    /// reported state only. (Set FLEET_PRINT_PAYLOAD=1 to print it, e.g.
    /// to recompute the hash with mi.py's `mi_hash`.)
    #[test]
    fn full_payload_is_mis() {
        let layout = Layout::new(3);
        let mut n = node(&layout);
        let (body, generation) = n.full_body(&layout);
        if std::env::var_os("FLEET_PRINT_PAYLOAD").is_some() {
            println!("{}", String::from_utf8_lossy(&body));
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(generation, 0);
        assert_eq!(v["artifacts"].as_object().unwrap().len(), 15);
        assert_eq!(v["nodeInfo"].as_object().unwrap().len(), 13);
        assert_eq!(v["runtimePort"], "9164");
        assert_eq!(v["runtimeHostname"], "127.1.1.1");
        assert_eq!(v["artifacts"]["proxyServices"].as_array().unwrap().len(), 3);
        assert_eq!(
            v["artifacts"]["apis"][0]["resources"][1]["methods"],
            "POST,PUT"
        );
        let before = n.hash(&layout);
        assert_eq!(v["runtimeHash"], before.as_str());
        // Template tracing is not reported: no new hash.
        assert!(n.set(Kind::Template, 0, Field::Tracing, true));
        assert_eq!(n.hash(&layout), before);
        assert!(n.set(Kind::Proxy, 0, Field::State, false));
        assert!(!n.set(Kind::Proxy, 0, Field::State, false));
        let after = n.hash(&layout);
        assert_ne!(after, before);
        let (body, generation) = n.full_body(&layout);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(generation, 1);
        assert_eq!(v["artifacts"]["proxyServices"][0]["state"], "disabled");
        assert_eq!(v["runtimeHash"], after.as_str());
    }

    #[test]
    fn loopback_addresses_round_trip() {
        for i in [0, 1, 253, 254, 64515, 64516, 100_000, 16_387_063] {
            let ip = loopback(i);
            assert_eq!(host_index(ip), Some(i), "{ip}");
        }
        assert_eq!(host_index(Ipv4Addr::LOCALHOST), None);
    }

    /// MI's token: header kid and alg only; no nbf; reused until 5 minutes
    /// before it expires.
    #[test]
    fn token_is_mis_and_cached() {
        let mut t = Token::new(&format!("abcd1234.{}", "k".repeat(44))).unwrap();
        let first = t.bearer(1_000_000).to_string();
        let jwt = first.strip_prefix("Bearer ").unwrap();
        let part = |i: usize| -> Value {
            serde_json::from_slice(&B64URL.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
        };
        assert_eq!(
            part(0),
            serde_json::json!({"kid": "abcd1234", "alg": "HS256"})
        );
        let claims = part(1);
        assert_eq!(claims["aud"], "icp-server");
        assert_eq!(claims["exp"], 1_003_600);
        assert!(claims.get("nbf").is_none() && claims.get("sub").is_none());
        assert_eq!(t.bearer(1_003_299), first);
        assert_ne!(t.bearer(1_003_300), first);
        assert!(Token::new("abcd1234.short").is_err());
    }
}
