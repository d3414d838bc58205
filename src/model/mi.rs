//! Micro Integrator artifacts and management addresses, as stored.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The kinds of MI artifact, in the order MI reports them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MiKind {
    Api,
    ProxyService,
    Endpoint,
    InboundEndpoint,
    Sequence,
    Task,
    Template,
    MessageStore,
    MessageProcessor,
    LocalEntry,
    DataService,
    CarbonApp,
    DataSource,
    Connector,
    RegistryResource,
}

impl MiKind {
    /// Every kind, in report order.
    pub const ALL: [MiKind; 15] = [
        MiKind::Api,
        MiKind::ProxyService,
        MiKind::Endpoint,
        MiKind::InboundEndpoint,
        MiKind::Sequence,
        MiKind::Task,
        MiKind::Template,
        MiKind::MessageStore,
        MiKind::MessageProcessor,
        MiKind::LocalEntry,
        MiKind::DataService,
        MiKind::CarbonApp,
        MiKind::DataSource,
        MiKind::Connector,
        MiKind::RegistryResource,
    ];

    /// The name stored and used in API paths (`proxy-service`).
    pub fn as_str(self) -> &'static str {
        match self {
            MiKind::Api => "api",
            MiKind::ProxyService => "proxy-service",
            MiKind::Endpoint => "endpoint",
            MiKind::InboundEndpoint => "inbound-endpoint",
            MiKind::Sequence => "sequence",
            MiKind::Task => "task",
            MiKind::Template => "template",
            MiKind::MessageStore => "message-store",
            MiKind::MessageProcessor => "message-processor",
            MiKind::LocalEntry => "local-entry",
            MiKind::DataService => "data-service",
            MiKind::CarbonApp => "carbon-app",
            MiKind::DataSource => "data-source",
            MiKind::Connector => "connector",
            MiKind::RegistryResource => "registry-resource",
        }
    }

    /// The member of the heartbeat's `artifacts` object that lists this kind.
    pub fn list_name(self) -> &'static str {
        match self {
            MiKind::Api => "apis",
            MiKind::ProxyService => "proxyServices",
            MiKind::Endpoint => "endpoints",
            MiKind::InboundEndpoint => "inboundEndpoints",
            MiKind::Sequence => "sequences",
            MiKind::Task => "tasks",
            MiKind::Template => "templates",
            MiKind::MessageStore => "messageStores",
            MiKind::MessageProcessor => "messageProcessors",
            MiKind::LocalEntry => "localEntries",
            MiKind::DataService => "dataServices",
            MiKind::CarbonApp => "carbonApps",
            MiKind::DataSource => "dataSources",
            MiKind::Connector => "connectors",
            MiKind::RegistryResource => "registryResources",
        }
    }

    /// A person's name for the kind, plural (`Proxy services`).
    pub fn title(self) -> &'static str {
        match self {
            MiKind::Api => "APIs",
            MiKind::ProxyService => "Proxy services",
            MiKind::Endpoint => "Endpoints",
            MiKind::InboundEndpoint => "Inbound endpoints",
            MiKind::Sequence => "Sequences",
            MiKind::Task => "Tasks",
            MiKind::Template => "Templates",
            MiKind::MessageStore => "Message stores",
            MiKind::MessageProcessor => "Message processors",
            MiKind::LocalEntry => "Local entries",
            MiKind::DataService => "Data services",
            MiKind::CarbonApp => "Carbon apps",
            MiKind::DataSource => "Data sources",
            MiKind::Connector => "Connectors",
            MiKind::RegistryResource => "Registry resources",
        }
    }

    pub fn parse(s: &str) -> Option<MiKind> {
        MiKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// [`MiKind::parse`], or a 400 that lists the kinds.
    pub fn parse_or_refuse(s: &str) -> Result<MiKind> {
        MiKind::parse(s).ok_or_else(|| {
            Error::BadRequest(format!(
                "'{}' is not an MI artifact kind; use one of {}",
                s.chars().take(40).collect::<String>(),
                MiKind::ALL.map(MiKind::as_str).join(", ")
            ))
        })
    }

    /// Whether MI can switch artifacts of this kind on and off
    /// (`status: active|inactive`; MI.md "Control actions").
    pub fn has_status(self) -> bool {
        matches!(
            self,
            MiKind::ProxyService
                | MiKind::Endpoint
                | MiKind::InboundEndpoint
                | MiKind::MessageProcessor
                | MiKind::Task
        )
    }

    /// Whether MI can switch tracing for this kind and reports it back.
    /// Templates accept a tracing change but never report tracing, so it
    /// could never be seen to converge: not offered.
    pub fn has_tracing(self) -> bool {
        matches!(
            self,
            MiKind::ProxyService
                | MiKind::Endpoint
                | MiKind::InboundEndpoint
                | MiKind::Api
                | MiKind::Sequence
        )
    }

    /// Whether MI can switch statistics for this kind (templates: sequence
    /// templates only, checked against the reported `type`).
    pub fn has_statistics(self) -> bool {
        self.has_tracing() || self == MiKind::Template
    }
}

/// One artifact of one runtime, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MiArtifact {
    pub kind: MiKind,
    pub name: String,
    /// `enabled`/`disabled` (carbon apps: `active`/`faulty`; connectors:
    /// their `status`); absent for kinds without one.
    pub state: Option<String>,
    pub tracing: Option<String>,
    pub statistics: Option<String>,
    pub carbon_app: Option<String>,
    /// Why the artifact is faulty: a carbon app's `errorMessage`, a
    /// connector's `error`, a data service MI could not read.
    pub error: Option<String>,
    /// The entry as the runtime reported it.
    pub detail: Value,
}

/// Where icpd reaches a runtime's Management API, as its heartbeat claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagementAddress {
    pub host: String,
    pub port: u16,
}

/// The kind and name an [`artifact_key`] names.
pub fn split_artifact_key(key: &str) -> Option<(MiKind, &str)> {
    let (kind, name) = key.split_once('/')?;
    Some((MiKind::parse(kind)?, name))
}

/// The artifacts of one runtime grouped by kind, in report order.
pub fn by_kind(artifacts: Vec<MiArtifact>) -> BTreeMap<MiKind, Vec<MiArtifact>> {
    let mut out: BTreeMap<MiKind, Vec<MiArtifact>> = BTreeMap::new();
    for a in artifacts {
        out.entry(a.kind).or_default().push(a);
    }
    out
}
