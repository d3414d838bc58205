//! The GraphQL types of the console API (ICP 2's schema on port 9446): every
//! object, input object and enum that GRAPHQL.md §5 (5.1 to 5.14) declares for
//! the served schema (R-NEW), with the same names, field names, field order
//! and nullability, so that introspection and field validation match what
//! the React console expects. The root `Query` and `Mutation` live elsewhere.
//!
//! Mapping: `T!` is `T`, nullable `T` is `Option<T>`, `[T!]!` is `Vec<T>`,
//! `[T!]` is `Option<Vec<T>>`; `Int` is `i32`. Field names are snake_case
//! that juniper camel-cases; names it cannot produce (Rust keywords such as
//! `type`, `class`, `package`, and `wsdl1_1`, `wsdl2_0`, `swagger_url`) are
//! given with `#[graphql(name = "...")]`.
//!
//! One quirk is reproduced on purpose (GRAPHQL.md §1.8): `ArtifactState` and
//! `ArtifactType` are declared as enums whose values are the upper-case names
//! (`ENABLED`, `RESTAPI`), and clients send those names, but responses carry
//! the Ballerina member *values* instead (`"enabled"`, `"RestApi"`). That is
//! not standard GraphQL and juniper's derive cannot express it, so both enums
//! are declared with the `valued_enum!` macro below, which implements
//! juniper's traits by hand. `LogLevel` uses it too, with values equal to its
//! names: the derive cannot take a variant named `Error` (its generated
//! `Self::Error` becomes ambiguous).

use juniper::{GraphQLEnum, GraphQLInputObject, GraphQLObject};

/// Declares an enum whose GraphQL values are upper-case names but whose
/// responses carry a different string (GRAPHQL.md §1.8).
///
/// It emits the enum (deriving `Debug`, `Clone`, `Copy`, `PartialEq`, `Eq`,
/// `Hash`), `ALL`, `graphql_name`, `from_graphql_name`, `as_value`,
/// `from_value` (case-insensitive, also on the `|` aliases), an optional
/// `Default`, and the trait impls that `#[derive(juniper::GraphQLEnum)]`
/// emits, for any scalar and context `()`, except that `resolve` yields the
/// value string. Input accepts the name, as an enum literal or a string.
///
/// ```text
/// valued_enum! {
///     /// Description of the enum.
///     pub enum ArtifactState default Enabled {
///         /// Description of the value.
///         Disabled = "DISABLED" => "disabled" | "inactive",
///         Enabled = "ENABLED" => "enabled" | "active",
///     }
/// }
/// ```
macro_rules! valued_enum {
    (
        $(#[doc = $doc:expr])*
        $vis:vis enum $name:ident $(default $default:ident)? {
            $(
                $(#[doc = $vdoc:expr])*
                $variant:ident = $gql:literal => $value:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[doc = $vdoc])*
                $variant,
            )+
        }

        // A given enum need not use every helper.
        #[allow(dead_code)]
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The GraphQL enum value name (what clients send).
            pub fn graphql_name(self) -> &'static str {
                match self {
                    $(Self::$variant => $gql,)+
                }
            }

            /// The value by its exact GraphQL enum value name.
            pub fn from_graphql_name(name: &str) -> Option<Self> {
                match name {
                    $($gql => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The string emitted in responses.
            pub fn as_value(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)+
                }
            }

            /// The value by its response string or an alias, ignoring ASCII
            /// case.
            pub fn from_value(s: &str) -> Option<Self> {
                $(
                    if s.eq_ignore_ascii_case($value) $(|| s.eq_ignore_ascii_case($alias))* {
                        return Some(Self::$variant);
                    }
                )+
                None
            }
        }

        $(
            impl ::core::default::Default for $name {
                fn default() -> Self {
                    Self::$default
                }
            }
        )?

        impl<__S: ::juniper::ScalarValue> ::juniper::marker::IsInputType<__S> for $name {}

        impl<__S: ::juniper::ScalarValue> ::juniper::marker::IsOutputType<__S> for $name {}

        impl<__S: ::juniper::ScalarValue> ::juniper::GraphQLType<__S> for $name {
            fn name(_: &Self::TypeInfo) -> ::core::option::Option<::juniper::ArcStr> {
                ::core::option::Option::Some(::juniper::arcstr::literal!(stringify!($name)))
            }

            fn meta(
                info: &Self::TypeInfo,
                registry: &mut ::juniper::Registry<__S>,
            ) -> ::juniper::meta::MetaType<__S> {
                // Doc lines joined as juniper's derive joins them.
                fn description(lines: &[&str]) -> ::core::option::Option<::std::string::String> {
                    if lines.is_empty() {
                        return ::core::option::Option::None;
                    }
                    let lines: ::std::vec::Vec<&str> = lines
                        .iter()
                        .map(|l| l.trim_end())
                        .map(|l| l.strip_prefix(' ').unwrap_or(l))
                        .collect();
                    ::core::option::Option::Some(lines.join("\n"))
                }
                let values = [$({
                    let value = ::juniper::meta::EnumValue::new(::juniper::arcstr::literal!($gql));
                    match description(&[$($vdoc),*]) {
                        ::core::option::Option::Some(d) => value.description(d),
                        ::core::option::Option::None => value,
                    }
                }),+];
                let meta = registry.build_enum_type::<$name>(info, &values);
                match description(&[$($doc),*]) {
                    ::core::option::Option::Some(d) => meta.description(d).into_meta(),
                    ::core::option::Option::None => meta.into_meta(),
                }
            }
        }

        impl<__S: ::juniper::ScalarValue> ::juniper::GraphQLValue<__S> for $name {
            type Context = ();
            type TypeInfo = ();

            fn type_name(&self, info: &Self::TypeInfo) -> ::core::option::Option<::juniper::ArcStr> {
                <Self as ::juniper::GraphQLType<__S>>::name(info)
            }

            fn resolve(
                &self,
                _: &(),
                _: ::core::option::Option<&[::juniper::Selection<__S>]>,
                _: &::juniper::Executor<Self::Context, __S>,
            ) -> ::juniper::ExecutionResult<__S> {
                ::core::result::Result::Ok(::juniper::Value::scalar(::std::string::String::from(
                    self.as_value(),
                )))
            }
        }

        impl<__S> ::juniper::GraphQLValueAsync<__S> for $name
        where
            __S: ::juniper::ScalarValue + ::core::marker::Send + ::core::marker::Sync,
            Self: ::core::marker::Sync,
        {
            fn resolve_async<'__a>(
                &'__a self,
                info: &'__a Self::TypeInfo,
                selection_set: ::core::option::Option<&'__a [::juniper::Selection<__S>]>,
                executor: &'__a ::juniper::Executor<Self::Context, __S>,
            ) -> ::juniper::BoxFuture<'__a, ::juniper::ExecutionResult<__S>> {
                let v = ::juniper::GraphQLValue::resolve(self, info, selection_set, executor);
                ::std::boxed::Box::pin(::juniper::futures::future::ready(v))
            }
        }

        impl<__S: ::juniper::ScalarValue> ::juniper::FromInputValue<__S> for $name {
            type Error = ::std::string::String;

            fn from_input_value(
                v: &::juniper::InputValue<__S>,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                v.as_enum_value()
                    .or_else(|| ::juniper::ScalarValue::try_as_str(v.as_scalar()?))
                    .and_then(Self::from_graphql_name)
                    .ok_or_else(|| ::std::format!("Unknown enum value: {}", v))
            }
        }

        impl<__S: ::juniper::ScalarValue> ::juniper::ToInputValue<__S> for $name {
            fn to_input_value(&self) -> ::juniper::InputValue<__S> {
                ::juniper::InputValue::<__S>::scalar(::std::string::String::from(
                    self.graphql_name(),
                ))
            }
        }

        impl<__S: ::juniper::ScalarValue> ::juniper::macros::reflect::BaseType<__S> for $name {
            const NAME: ::juniper::macros::reflect::Type = stringify!($name);
        }

        impl<__S: ::juniper::ScalarValue> ::juniper::macros::reflect::BaseSubTypes<__S> for $name {
            const NAMES: ::juniper::macros::reflect::Types =
                &[<Self as ::juniper::macros::reflect::BaseType<__S>>::NAME];
        }

        impl<__S: ::juniper::ScalarValue> ::juniper::macros::reflect::WrappedType<__S> for $name {
            const VALUE: ::juniper::macros::reflect::WrappedValue = 1;
        }
    };
}

// Lets other modules declare such enums as `crate::graphql::schema::valued_enum!`;
// unused until one does.
#[allow(unused_imports)]
pub(crate) use valued_enum;

// ---------------------------------------------------------------------------
// 5.1 Shared: pagination, runtime references, enums
// ---------------------------------------------------------------------------

/// Paging of a list: the whole list's size and the window returned.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct PageInfo {
    /// Number of items in the whole (permission-filtered) list.
    pub total: i32,
    /// Page size applied (the whole list's size when no limit was given).
    pub limit: i32,
    /// Index of the first item returned.
    pub offset: i32,
}

/// Paging request: no `limit` means the whole list.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct PaginationInput {
    /// Page size, clamped to 0..500; absent means the whole list.
    pub limit: Option<i32>,
    /// Index of the first item, clamped to the list; ignored without `limit`.
    pub offset: Option<i32>,
    /// Accepted and ignored.
    pub cursor: Option<String>,
}

/// One runtime that reports an artifact, with its status.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ArtifactRuntimeInfo {
    /// Runtime id.
    pub runtime_id: String,
    /// Runtime (node) name.
    pub runtime_name: Option<String>,
    /// `RUNNING` or `OFFLINE`.
    pub status: String,
}

valued_enum! {
    /// On/off state of an artifact. Sent as `ENABLED`/`DISABLED`; emitted in responses as `"enabled"`/`"disabled"`.
    pub enum ArtifactState default Enabled {
        /// Disabled; emitted as "disabled".
        Disabled = "DISABLED" => "disabled" | "inactive" | "disable",
        /// Enabled; emitted as "enabled".
        Enabled = "ENABLED" => "enabled" | "active" | "enable",
    }
}

/// Kind of runtime, and of integration (component).
#[derive(GraphQLEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeType {
    /// Ballerina Integrator runtime (the `Default`, only as a placeholder).
    #[default]
    #[graphql(name = "BI")]
    Bi,
    /// WSO2 Micro Integrator runtime.
    #[graphql(name = "MI")]
    Mi,
}

/// Outcome of an artifact-control mutation.
#[derive(GraphQLEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// The change failed (the `Default`).
    #[default]
    #[graphql(name = "FAILED")]
    Failed,
    /// The change was recorded.
    #[graphql(name = "SUCCESS")]
    Success,
}

valued_enum! {
    /// Log level of a logger or module.
    pub enum LogLevel default Info {
        /// Fatal errors only.
        Fatal = "FATAL" => "FATAL",
        /// Errors.
        Error = "ERROR" => "ERROR",
        /// Warnings.
        Warn = "WARN" => "WARN",
        /// Informational messages (the `Default`).
        Info = "INFO" => "INFO",
        /// Debug messages.
        Debug = "DEBUG" => "DEBUG",
        /// Trace messages.
        Trace = "TRACE" => "TRACE",
        /// Logging off.
        Off = "OFF" => "OFF",
    }
}

valued_enum! {
    /// Kind of artifact. Emitted in responses as its Ballerina value (`"RestApi"`, `"ProxyService"`, ...), never as the upper-case name.
    pub enum ArtifactType {
        /// MI registry resource; emitted as "RegistryResource".
        RegistryResource = "REGISTRYRESOURCE" => "RegistryResource",
        /// MI connector; emitted as "Connector".
        Connector = "CONNECTOR" => "Connector",
        /// MI data source; emitted as "DataSource".
        DataSource = "DATASOURCE" => "DataSource",
        /// MI composite application (CAR); emitted as "CompositeApp".
        CompositeApp = "COMPOSITEAPP" => "CompositeApp",
        /// MI data service; emitted as "DataService".
        DataService = "DATASERVICE" => "DataService",
        /// MI local entry; emitted as "LocalEntry".
        LocalEntry = "LOCALENTRY" => "LocalEntry",
        /// MI message processor; emitted as "MessageProcessor".
        MessageProcessor = "MESSAGEPROCESSOR" => "MessageProcessor",
        /// MI message store; emitted as "MessageStore".
        MessageStore = "MESSAGESTORE" => "MessageStore",
        /// MI template; emitted as "Template".
        Template = "TEMPLATE" => "Template",
        /// MI task; emitted as "Task".
        Task = "TASK" => "Task",
        /// MI sequence; emitted as "Sequence".
        Sequence = "SEQUENCE" => "Sequence",
        /// MI inbound endpoint; emitted as "InboundEndpoint".
        InboundEndpoint = "INBOUNDENDPOINT" => "InboundEndpoint",
        /// MI endpoint; emitted as "Endpoint".
        Endpoint = "ENDPOINT" => "Endpoint",
        /// MI proxy service; emitted as "ProxyService".
        ProxyService = "PROXYSERVICE" => "ProxyService",
        /// MI REST API; emitted as "RestApi".
        RestApi = "RESTAPI" => "RestApi",
        /// BI listener; emitted as "Listener".
        Listener = "LISTENER" => "Listener",
        /// BI service; emitted as "Service".
        Service = "SERVICE" => "Service",
    }
}

/// Action on a listener (only `START` and `STOP` are valid for `updateListenerState`).
#[derive(GraphQLEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// Internal; not valid for `updateListenerState`.
    #[graphql(name = "MI_MGMT")]
    MiMgmt,
    /// Internal; not valid for `updateListenerState`.
    #[graphql(name = "WORKFLOW_MGMT")]
    WorkflowMgmt,
    /// Internal; not valid for `updateListenerState`.
    #[graphql(name = "SET_LOGGER_LEVEL")]
    SetLoggerLevel,
    /// Stop the listener.
    #[graphql(name = "STOP")]
    Stop,
    /// Start the listener.
    #[graphql(name = "START")]
    Start,
}

// ---------------------------------------------------------------------------
// 5.2 Runtimes
// ---------------------------------------------------------------------------

/// A page of runtimes.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RuntimesPage {
    /// This page's runtimes.
    pub items: Vec<Runtime>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A registered BI or MI runtime (one replica of an integration in one environment).
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Runtime {
    /// Runtime id, supplied by the runtime in its heartbeat.
    pub runtime_id: String,
    /// Node name.
    pub runtime_name: Option<String>,
    /// `BI` or `MI`.
    pub runtime_type: String,
    /// `RUNNING` or `OFFLINE`.
    pub status: String,
    /// Runtime product version.
    pub version: Option<String>,
    /// MI management host as reported in the heartbeat.
    pub management_hostname: Option<String>,
    /// MI management port (a String, not an Int).
    pub management_port: Option<String>,
    /// The integration this runtime belongs to.
    pub component: Component,
    /// The environment this runtime runs in.
    pub environment: Environment,
    /// Platform name.
    pub platform_name: Option<String>,
    /// Platform version.
    pub platform_version: Option<String>,
    /// Platform home directory.
    pub platform_home: Option<String>,
    /// Operating system name.
    pub os_name: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// When the runtime first registered (RFC 3339).
    pub registration_time: Option<String>,
    /// When the last heartbeat arrived (RFC 3339).
    pub last_heartbeat: Option<String>,
    /// Artifacts of this runtime (heartbeat snapshot).
    pub artifacts: Option<Artifacts>,
    /// BI per-module log levels from the last heartbeat.
    pub log_levels: Option<Vec<RuntimeLogLevelRecord>>,
    /// OpenAPI definitions reported by the runtime.
    pub open_api_definitions: Option<Vec<OpenApiDefinitionRecord>>,
}

/// The artifacts a runtime reported in its heartbeat.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Artifacts {
    /// BI listeners.
    pub listeners: Vec<Listener>,
    /// BI services.
    pub services: Vec<Service>,
    /// BI main (automation) package.
    pub main: Option<Main>,
    /// MI REST APIs.
    pub apis: Vec<RestApi>,
    /// MI proxy services.
    pub proxy_services: Vec<ProxyService>,
    /// MI endpoints.
    pub endpoints: Vec<Endpoint>,
    /// MI inbound endpoints.
    pub inbound_endpoints: Vec<InboundEndpoint>,
    /// MI sequences.
    pub sequences: Vec<Sequence>,
    /// MI tasks.
    pub tasks: Vec<Task>,
    /// MI templates.
    pub templates: Vec<Template>,
    /// MI message stores.
    pub message_stores: Vec<MessageStore>,
    /// MI message processors.
    pub message_processors: Vec<MessageProcessor>,
    /// MI local entries.
    pub local_entries: Vec<LocalEntry>,
    /// MI data services.
    pub data_services: Vec<DataService>,
    /// MI composite apps (name kept from the heartbeat key).
    pub carbon_apps: Vec<CompositeApp>,
    /// MI data sources.
    pub data_sources: Vec<DataSource>,
    /// MI connectors.
    pub connectors: Vec<Connector>,
    /// MI registry resources.
    pub registry_resources: Vec<RegistryResource>,
}

/// Package coordinates of a BI main program.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Main {
    /// Package organization.
    pub package_org: String,
    /// Package name.
    pub package_name: String,
    /// Package version.
    pub package_version: String,
}

/// A BI module's log level as reported by one runtime.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RuntimeLogLevelRecord {
    /// Runtime id.
    pub runtime_id: String,
    /// Module name.
    pub component_name: String,
    /// Log level name.
    pub log_level: String,
}

/// An OpenAPI definition reported by a runtime.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct OpenApiDefinitionRecord {
    /// File name of the definition.
    pub file_name: String,
    /// The definition, as JSON text.
    pub definition: String,
}

/// Result of `deleteRuntime`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DeleteRuntimeResult {
    /// Whether the runtime was deleted.
    pub deleted: bool,
    /// Id of the secret no runtime uses any more, if any.
    pub orphaned_key_id: Option<String>,
    /// Whether that secret was revoked.
    pub secret_revoked: bool,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ComponentDeployment {
    pub environment_id: String,
    pub config_count: i32,
    pub api_id: Option<String>,
    pub release_id: String,
    pub api_revision: Option<ApiRevision>,
    pub build: BuildInfo,
    pub image_url: String,
    pub invoke_url: String,
    pub version_id: String,
    pub deployment_status: String,
    pub deployment_status_v2: String,
    pub version: Option<String>,
    pub cron: Option<String>,
    pub cron_timezone: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ApiRevision {
    pub id: String,
    pub display_name: String,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct BuildInfo {
    pub build_id: String,
    pub deployed_at: Option<String>,
    pub commit: Option<CommitInfo>,
    pub source_config_migration_status: Option<SourceConfigMigrationStatus>,
    pub run_id: String,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct CommitInfo {
    pub author: AuthorInfo,
    pub sha: String,
    pub message: String,
    pub is_latest: bool,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct AuthorInfo {
    pub name: String,
    pub date: String,
    pub email: String,
    pub avatar_url: String,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct SourceConfigMigrationStatus {
    pub can_migrate: bool,
    pub existing_file_name: String,
    pub existing_file_schema_version: String,
}

// ---------------------------------------------------------------------------
// 5.3 Environments
// ---------------------------------------------------------------------------

/// A deployment environment (e.g. `dev`, `prod`).
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Environment {
    /// Environment id (UUID).
    pub id: String,
    /// Display name, globally unique.
    pub name: String,
    /// Handler (slug), globally unique.
    pub handler: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Region (seeded environments only).
    pub region: Option<String>,
    /// Cluster id (seeded environments only).
    pub cluster_id: Option<String>,
    /// Choreo environment name (seeded environments only).
    pub choreo_env: Option<String>,
    /// External APIM environment name (seeded environments only).
    pub external_apim_env_name: Option<String>,
    /// Internal APIM environment name (seeded environments only).
    pub internal_apim_env_name: Option<String>,
    /// Sandbox APIM environment name (seeded environments only).
    pub sandbox_apim_env_name: Option<String>,
    /// Production flag.
    pub critical: bool,
    /// DNS prefix (seeded environments only).
    pub dns_prefix: Option<String>,
    /// Legacy; always null.
    pub vhost: Option<String>,
    /// Legacy; always null.
    pub sandbox_vhost: Option<String>,
    /// Legacy; always null.
    pub api_env_name: Option<String>,
    /// Legacy; always null.
    pub apim_env_id: Option<String>,
    /// Legacy; always null.
    pub is_migrating: Option<bool>,
    /// Legacy; always null.
    pub promote_from: Option<String>,
    /// Legacy; always null.
    pub namespace: Option<String>,
    /// Legacy; always null.
    pub dp_id: Option<String>,
    /// Legacy; always null.
    pub template_id: Option<String>,
    /// Legacy; always null.
    pub is_pdp: Option<bool>,
    /// Legacy; always null.
    pub scale_to_zero_enabled: Option<bool>,
    /// When the environment was created (RFC 3339).
    pub created_at: Option<String>,
    /// When the environment was last updated (RFC 3339).
    pub updated_at: Option<String>,
    /// Who last updated the environment.
    pub updated_by: Option<String>,
    /// Who created the environment.
    pub created_by: Option<String>,
}

/// A page of environments.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct EnvironmentsPage {
    /// This page's environments.
    pub items: Vec<Environment>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A new environment.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct EnvironmentInput {
    /// Display name, globally unique.
    pub name: String,
    /// Handler (slug), globally unique.
    pub environment_handler: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Production flag.
    pub critical: bool,
    /// Ignored; the server sets it from the token.
    pub created_by: Option<String>,
}

/// Whether an environment handler is free, with a suggestion when it is not.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct EnvironmentHandlerAvailability {
    /// Whether the candidate handler is unused.
    pub handler_unique: bool,
    /// A free handler derived from the candidate, when it is taken.
    pub alternate_handler_candidate: Option<String>,
}

// ---------------------------------------------------------------------------
// 5.4 Projects
// ---------------------------------------------------------------------------

/// A project: a group of integrations.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Project {
    /// Project id (UUID).
    pub id: String,
    /// Organization id (always 1).
    pub org_id: i32,
    /// Display name.
    pub name: String,
    /// Version (the console creates projects with "1.0.0").
    pub version: Option<String>,
    /// When the project was created (RFC 3339).
    pub created_date: Option<String>,
    /// Handler (slug), unique in the organization.
    pub handler: String,
    /// Legacy; always null.
    pub extended_handler: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// Legacy deployment pipeline id.
    pub default_deployment_pipeline_id: String,
    /// Legacy deployment pipeline ids.
    pub deployment_pipeline_ids: Vec<String>,
    /// Project type.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// Legacy; Git provider.
    pub git_provider: Option<String>,
    /// Legacy; Git organization.
    pub git_organization: Option<String>,
    /// Legacy; Git repository.
    pub repository: Option<String>,
    /// Legacy; Git branch.
    pub branch: Option<String>,
    /// Legacy; secret reference.
    pub secret_ref: Option<String>,
    /// Owner id.
    pub owner_id: Option<String>,
    /// Who created the project.
    pub created_by: Option<String>,
    /// When the project was last updated (RFC 3339).
    pub updated_at: Option<String>,
    /// Who last updated the project.
    pub updated_by: Option<String>,
}

/// A page of projects.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ProjectsPage {
    /// This page's projects.
    pub items: Vec<Project>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A new project.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ProjectInput {
    /// Organization id (always 1).
    pub org_id: i32,
    /// Organization handle.
    pub org_handler: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: Option<String>,
    /// The handler stored (trimmed; must be non-empty and unique in the organization).
    pub project_handler: String,
    /// Accepted and ignored.
    pub handler: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// Legacy deployment pipeline id.
    pub default_deployment_pipeline_id: Option<String>,
    /// Legacy deployment pipeline ids.
    pub deployment_pipeline_ids: Option<Vec<String>>,
    /// Project type.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// Legacy; Git provider.
    pub git_provider: Option<String>,
    /// Legacy; Git organization.
    pub git_organization: Option<String>,
    /// Legacy; Git repository.
    pub repository: Option<String>,
    /// Legacy; Git branch.
    pub branch: Option<String>,
    /// Legacy; secret reference.
    pub secret_ref: Option<String>,
}

/// Changes to a project: `name`, `version`, `description` of project `id`.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ProjectUpdateInput {
    /// Id of the project to update.
    pub id: String,
    /// Organization id.
    pub org_id: Option<i32>,
    /// New display name.
    pub name: Option<String>,
    /// New version.
    pub version: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// Whether the caller may create projects.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ProjectCreationEligibility {
    /// Whether project creation is allowed.
    pub is_project_creation_allowed: bool,
}

/// Whether a project handler is free, with a suggestion when it is not.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ProjectHandlerAvailability {
    /// Whether the candidate handler is unused in the organization.
    pub handler_unique: bool,
    /// A free handler derived from the candidate, when it is taken.
    pub alternate_handler_candidate: Option<String>,
}

/// Result of `deleteProject`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DeleteResponse {
    /// `success` or `failed`.
    pub status: String,
    /// Explanation.
    pub details: String,
}

// ---------------------------------------------------------------------------
// 5.5 Components (integrations)
// ---------------------------------------------------------------------------

/// An integration (component) of a project.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Component {
    /// Component id (UUID).
    pub id: String,
    /// Id of the owning project.
    pub project_id: String,
    /// Quirk: holds the project's handler, not the organization's.
    pub org_handler: String,
    /// Organization id.
    pub org_id: Option<i32>,
    /// Name, unique in the project.
    pub name: String,
    /// Handler; equals the name.
    pub handler: String,
    /// Display name.
    pub display_name: String,
    /// Display type (default "service").
    pub display_type: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Owner name.
    pub owner_name: Option<String>,
    /// Always "active".
    pub status: String,
    /// Always "completed".
    pub init_status: Option<String>,
    /// Always "v1.0.0".
    pub version: String,
    /// When the component was created (RFC 3339).
    pub created_at: String,
    /// Legacy; always null.
    pub last_build_date: Option<String>,
    /// When the component was last updated (RFC 3339).
    pub updated_at: Option<String>,
    /// Component subtype, set with the display type.
    pub component_sub_type: Option<String>,
    /// `BI` or `MI`: where loggers and artifacts come from.
    pub component_type: RuntimeType,
    /// Legacy; always null.
    pub labels: Option<String>,
    /// Always false.
    pub is_system_component: Option<bool>,
    /// Legacy; always null.
    pub api_id: Option<String>,
    /// Legacy; always null.
    pub http_based: Option<bool>,
    /// Legacy; always null.
    pub is_migration_completed: Option<bool>,
    /// Legacy; always null.
    pub skip_deploy: Option<bool>,
    /// Legacy; always null.
    pub endpoint_short_url_enabled: Option<bool>,
    /// Legacy; always null.
    pub is_unified_config_mapping: Option<bool>,
    /// Legacy; always null.
    pub service_access_mode: Option<String>,
    /// Legacy; always null.
    pub repository: Option<Repository>,
    /// Legacy; always empty.
    pub api_versions: Option<Vec<ApiVersion>>,
    /// Legacy; always empty.
    pub deployment_tracks: Option<Vec<DeploymentTrack>>,
    /// Legacy; always null.
    pub git_provider: Option<String>,
    /// Legacy; always null.
    pub git_organization: Option<String>,
    /// Legacy; always null.
    pub git_repository: Option<String>,
    /// Legacy; always null.
    pub branch: Option<String>,
    /// Legacy; always empty.
    pub endpoints: Option<Vec<ComponentEndpoint>>,
    /// Legacy; always empty.
    pub environment_variables: Option<Vec<ComponentEnvironmentVariable>>,
    /// Legacy; always empty.
    pub secrets: Option<Vec<ComponentSecret>>,
    /// The component id again.
    pub component_id: Option<String>,
    /// The owning project.
    pub project: Option<Project>,
    /// Who created the component.
    pub created_by: Option<String>,
    /// Who last updated the component.
    pub updated_by: Option<String>,
}

/// A page of components.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ComponentsPage {
    /// This page's components.
    pub items: Vec<Component>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A new component.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ComponentInput {
    /// Id of the owning project.
    pub project_id: String,
    /// Name, 3 to 64 characters, unique in the project.
    pub name: String,
    /// Display name (defaults to the name).
    pub display_name: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// Organization id.
    pub org_id: Option<i32>,
    /// Organization handle.
    pub org_handler: Option<String>,
    /// `BI` or `MI`.
    pub component_type: Option<RuntimeType>,
    /// Technology (the console sends "WSO2MI").
    pub technology: Option<String>,
    /// Display type (default "service").
    pub display_type: Option<String>,
    /// Component subtype.
    pub component_sub_type: Option<String>,
    /// Legacy; Git repository.
    pub repository: Option<String>,
    /// Legacy; Git branch.
    pub branch: Option<String>,
    /// Legacy; directory in the repository.
    pub directory_path: Option<String>,
    /// Legacy; secret reference.
    pub secret_ref: Option<String>,
    /// Legacy; whether the repository is public.
    pub is_public_repo: Option<bool>,
    /// Ignored; the server sets it from the token.
    pub created_by: Option<String>,
}

/// Changes to a component; only the name, display name, description and display type with subtype are kept.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ComponentUpdateInput {
    /// Id of the component to update.
    pub id: String,
    /// New name.
    pub name: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Accepted and dropped.
    pub component_type: Option<RuntimeType>,
    /// Accepted and dropped.
    pub version: Option<String>,
    /// Accepted and dropped.
    pub labels: Option<String>,
    /// Accepted and dropped.
    pub service_access_mode: Option<String>,
    /// New display type (written with `componentSubType`).
    pub display_type: Option<String>,
    /// Accepted and dropped.
    pub api_id: Option<String>,
    /// Accepted and dropped.
    pub http_based: Option<bool>,
    /// Accepted and dropped.
    pub is_migration_completed: Option<bool>,
    /// Accepted and dropped.
    pub skip_deploy: Option<bool>,
    /// Accepted and dropped.
    pub endpoint_short_url_enabled: Option<bool>,
    /// Accepted and dropped.
    pub is_unified_config_mapping: Option<bool>,
    /// New component subtype (written with `displayType`).
    pub component_sub_type: Option<String>,
}

/// Options of the `components` list.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ComponentOptionsInput {
    /// Accepted and ignored.
    pub filter: Option<ComponentFilterInput>,
    /// Accepted and ignored.
    pub sort: Option<ComponentSortInput>,
    /// Paging of the list.
    pub pagination: Option<PaginationInput>,
}

/// Component filter (accepted and ignored).
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ComponentFilterInput {
    /// Include system components.
    pub with_system_components: Option<bool>,
    /// Display type.
    pub display_type: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Component subtype.
    pub component_sub_type: Option<String>,
}

/// Component sort order (accepted and ignored).
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ComponentSortInput {
    /// Field to sort on.
    pub field: String,
    /// Sort order.
    pub order: String,
}

/// Result of `deleteComponentV2`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DeleteComponentV2Response {
    /// `SUCCESS` or `FAILED`.
    pub status: String,
    /// Whether the component could be deleted.
    pub can_delete: bool,
    /// Explanation.
    pub message: String,
    /// Legacy; encoded data.
    pub encoded_data: String,
}

/// How many artifacts of one type a component has.
#[derive(GraphQLObject, Debug, Clone)]
pub struct ArtifactTypeCount {
    /// Artifact type; emitted as its value (e.g. "RestApi").
    pub artifact_type: ArtifactType,
    /// Number of artifacts of that type.
    pub artifact_count: i32,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Repository {
    pub buildpack_config: Option<BuildpackConfig>,
    pub byoc_web_app_build_config: Option<ByocWebAppBuildConfig>,
    pub byoc_build_config: Option<ByocBuildConfig>,
    pub docker_build_config: Option<DockerBuildConfig>,
    pub test_runner_config: Option<TestRunnerConfig>,
    pub repository_type: Option<String>,
    pub repository_branch: Option<String>,
    pub repository_sub_path: Option<String>,
    pub repository_url: Option<String>,
    pub bitbucket_server_url: Option<String>,
    pub server_url: Option<String>,
    pub git_provider: Option<String>,
    pub name_app: Option<String>,
    pub name_config: Option<String>,
    pub branch: Option<String>,
    pub branch_app: Option<String>,
    pub organization_app: Option<String>,
    pub organization_config: Option<String>,
    pub app_sub_path: Option<String>,
    pub is_user_manage: Option<bool>,
    pub is_authorized_repo: Option<bool>,
    pub is_build_configuration_migrated: Option<bool>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct BuildpackConfig {
    pub version_id: Option<String>,
    pub build_context: Option<String>,
    pub language_version: Option<String>,
    pub build_command: Option<String>,
    pub run_command: Option<String>,
    pub is_unit_test_enabled: Option<bool>,
    pub pull_latest_submodules: Option<bool>,
    pub enable_trivy_scan: Option<bool>,
    pub buildpack: Option<Buildpack>,
    pub key_values: Option<Vec<KeyValue>>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Buildpack {
    pub id: String,
    pub name: Option<String>,
    pub language: String,
    pub version: Option<String>,
    pub description: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct KeyValue {
    pub id: Option<String>,
    pub key: String,
    pub value: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ByocWebAppBuildConfig {
    pub id: Option<String>,
    pub container_id: Option<String>,
    pub component_id: Option<String>,
    pub repository_id: Option<String>,
    pub docker_context: Option<String>,
    pub web_app_type: Option<String>,
    pub port: Option<i32>,
    pub image_url: Option<String>,
    pub registry_id: Option<String>,
    pub dockerfile: Option<String>,
    pub build_command: Option<String>,
    pub package_manager_version: Option<String>,
    pub output_directory: Option<String>,
    pub enable_trivy_scan: Option<bool>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ByocBuildConfig {
    pub id: Option<String>,
    pub is_main_container: Option<bool>,
    pub container_id: Option<String>,
    pub component_id: Option<String>,
    pub repository_id: Option<String>,
    pub docker_context: Option<String>,
    pub dockerfile_path: Option<String>,
    pub oas_file_path: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DockerBuildConfig {
    pub id: Option<String>,
    pub docker_context: Option<String>,
    pub dockerfile: Option<String>,
    pub port: Option<i32>,
    pub image_url: Option<String>,
    pub registry_id: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct TestRunnerConfig {
    pub docker_context: Option<String>,
    pub postman_directory: Option<String>,
    pub test_runner_type: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always empty in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ApiVersion {
    pub id: String,
    pub api_version: String,
    pub version_id: Option<String>,
    pub proxy_name: Option<String>,
    pub proxy_url: Option<String>,
    pub proxy_id: Option<String>,
    pub state: ArtifactState,
    pub latest: bool,
    pub branch: Option<String>,
    pub accessibility: Option<String>,
    pub auto_deploy_enabled: Option<bool>,
    pub app_env_versions: Option<Vec<AppEnvVersion>>,
    pub cell_diagram: Option<CellDiagram>,
    pub open_api_spec: Option<String>,
    pub graphql_schema: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub description: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct AppEnvVersion {
    pub environment_id: String,
    pub release_id: String,
    pub release: Option<Release>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Release {
    pub id: String,
    pub metadata: Option<ReleaseMetadata>,
    pub environment_id: Option<String>,
    pub environment: Option<String>,
    pub git_hash: Option<String>,
    pub git_ops_hash: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ReleaseMetadata {
    pub choreo_env: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always null in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct CellDiagram {
    pub data: Option<String>,
    pub message: Option<String>,
    pub error_name: Option<String>,
    pub success: bool,
}

/// Legacy Choreo-era type, kept for schema compatibility; always empty in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DeploymentTrack {
    pub id: String,
    pub component_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub api_version: String,
    pub branch: Option<String>,
    pub latest: bool,
    pub version_strategy: Option<String>,
    pub description: Option<String>,
    pub auto_deploy_enabled: Option<bool>,
    pub auto_build_enabled: Option<bool>,
    pub environment_name: Option<String>,
    pub environment_id: Option<String>,
    pub deployment_status: Option<String>,
    pub last_deployed_at: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always empty in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ComponentEndpoint {
    pub id: String,
    pub component_id: String,
    pub name: String,
    pub url: String,
    #[graphql(name = "type")]
    pub kind: String,
    pub protocol: Option<String>,
    pub port: Option<i32>,
    pub visibility: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always empty in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ComponentEnvironmentVariable {
    pub key: String,
    pub value: Option<String>,
    pub is_secret: bool,
    pub description: Option<String>,
}

/// Legacy Choreo-era type, kept for schema compatibility; always empty in icpd.
#[allow(dead_code)]
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ComponentSecret {
    pub key: String,
    pub description: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

// ---------------------------------------------------------------------------
// 5.6 Secrets (runtime credentials)
// ---------------------------------------------------------------------------

/// A page of the organization's runtime secrets.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct OrgSecretsPage {
    /// This page's secrets.
    pub items: Vec<OrgSecretListEntry>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A runtime secret (key material is never listed).
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct OrgSecretListEntry {
    /// Key id (8 lowercase hex characters).
    pub key_id: String,
    /// Environment the secret is for.
    pub environment_id: String,
    /// Name of that environment.
    pub environment_name: String,
    /// True when tied to a project and integration.
    pub bound: bool,
    /// When the secret was created (RFC 3339).
    pub created_at: String,
    /// Who created the secret.
    pub created_by: Option<String>,
}

/// A page of the secrets bound to one integration.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct BoundSecretsPage {
    /// This page's secrets.
    pub items: Vec<BoundSecretEntry>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A secret bound to an integration, with the runtimes that authenticated with it.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct BoundSecretEntry {
    /// Key id (8 lowercase hex characters).
    pub key_id: String,
    /// When the secret was created (RFC 3339).
    pub created_at: String,
    /// Who created the secret.
    pub created_by: Option<String>,
    /// Runtimes that authenticated with this key.
    pub runtimes: Vec<BoundSecretRuntime>,
}

/// A runtime that authenticated with a secret.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct BoundSecretRuntime {
    /// Runtime id.
    pub runtime_id: String,
    /// `RUNNING` or `OFFLINE`.
    pub status: String,
}

// ---------------------------------------------------------------------------
// 5.7 BI artifacts: services, resources, listeners, automations, workflows
// ---------------------------------------------------------------------------

/// A page of BI services.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ServicesPage {
    /// This page's services.
    pub items: Vec<Service>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A BI service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Service {
    /// Service name.
    pub name: String,
    /// Package (module) of the service.
    #[graphql(name = "package")]
    pub package_name: String,
    /// Base path.
    pub base_path: String,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Service kind from the heartbeat (e.g. `http`).
    #[graphql(name = "type")]
    pub kind: String,
    /// Resources of the service.
    pub resources: Vec<Resource>,
    /// Listeners the service is attached to.
    pub listeners: Vec<Listener>,
    /// Runtimes reporting the service (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A resource of a BI service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Resource {
    /// Legacy; may be "".
    pub path: String,
    /// Legacy; may be "".
    pub method: String,
    /// BI: resource path.
    pub url: String,
    /// BI: HTTP methods of the resource.
    pub methods: Vec<String>,
}

/// A page of BI listeners.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ListenersPage {
    /// This page's listeners.
    pub items: Vec<Listener>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A BI listener.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Listener {
    /// Listener name.
    pub name: String,
    /// Package (module) of the listener.
    #[graphql(name = "package")]
    pub package_name: String,
    /// Protocol (e.g. `http`).
    pub protocol: String,
    /// Host the listener binds.
    pub host: Option<String>,
    /// Port the listener binds.
    pub port: Option<i32>,
    /// JMS destination.
    pub destination: Option<String>,
    /// RabbitMQ queue.
    pub queue: Option<String>,
    /// File path, for file listeners.
    pub path: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Runtimes reporting the listener (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of BI automations.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct AutomationsPage {
    /// This page's automations.
    pub items: Vec<Automation>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A BI main (scheduled or one-shot program), identified by its package coordinates.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Automation {
    /// Package organization.
    pub package_org: String,
    /// Package name.
    pub package_name: String,
    /// Package version.
    pub package_version: String,
    /// Latest execution (RFC 3339).
    pub execution_timestamp: String,
    /// Runtimes reporting the automation.
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status and executions.
    pub runtimes: Option<Vec<AutomationRuntimeInfo>>,
}

/// One runtime's executions of an automation.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct AutomationRuntimeInfo {
    /// Runtime id.
    pub runtime_id: String,
    /// Runtime (node) name.
    pub runtime_name: Option<String>,
    /// `RUNNING` or `OFFLINE`.
    pub status: String,
    /// Execution times (RFC 3339).
    pub execution_timestamps: Vec<String>,
}

/// A page of workflows.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct WorkflowsPage {
    /// This page's workflows.
    pub items: Vec<Workflow>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// A workflow definition reported by a workflow-capable BI runtime.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Workflow {
    /// Workflow name.
    pub name: String,
    /// Whether the workflow is active.
    pub is_active: bool,
    /// Number of workers.
    pub worker_count: i32,
    /// Input schema, as JSON text.
    pub input_schema: Option<String>,
    /// State; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Per-runtime status.
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

// ---------------------------------------------------------------------------
// 5.8 MI artifacts
// ---------------------------------------------------------------------------

/// A page of MI REST APIs.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RestApisPage {
    /// This page's APIs.
    pub items: Vec<RestApi>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI REST API.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RestApi {
    /// API name.
    pub name: String,
    /// URL of the API.
    pub url: String,
    /// URLs of the API.
    pub urls: Vec<String>,
    /// Context path.
    pub context: String,
    /// API version.
    pub version: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Tracing: `enabled` or `disabled`.
    pub tracing: String,
    /// Whether every runtime has converged on the desired tracing; null when none is set.
    pub tracing_in_sync: Option<bool>,
    /// Statistics: `enabled` or `disabled`.
    pub statistics: String,
    /// Whether every runtime has converged on the desired statistics; null when none is set.
    pub statistics_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Resources of the API.
    pub resources: Vec<ApiResource>,
    /// Runtimes reporting the API (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A resource of an MI REST API.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ApiResource {
    /// Resource path (URI template or mapping).
    pub path: String,
    /// HTTP methods in one string, e.g. "GET" or "GET,POST".
    pub methods: String,
}

/// A page of MI proxy services.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ProxyServicesPage {
    /// This page's proxy services.
    pub items: Vec<ProxyService>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI proxy service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ProxyService {
    /// Proxy service name.
    pub name: String,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Tracing: `enabled` or `disabled`.
    pub tracing: String,
    /// Whether every runtime has converged on the desired tracing; null when none is set.
    pub tracing_in_sync: Option<bool>,
    /// Statistics: `enabled` or `disabled`.
    pub statistics: String,
    /// Whether every runtime has converged on the desired statistics; null when none is set.
    pub statistics_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Endpoint URLs of the proxy service.
    pub endpoints: Option<Vec<String>>,
    /// Runtimes reporting the proxy service (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI endpoints.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct EndpointsPage {
    /// This page's endpoints.
    pub items: Vec<Endpoint>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI endpoint.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Endpoint {
    /// Endpoint name.
    pub name: String,
    /// Endpoint type (e.g. `http`, `address`).
    #[graphql(name = "type")]
    pub kind: String,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Tracing: `enabled` or `disabled`.
    pub tracing: String,
    /// Whether every runtime has converged on the desired tracing; null when none is set.
    pub tracing_in_sync: Option<bool>,
    /// Statistics: `enabled` or `disabled`.
    pub statistics: String,
    /// Whether every runtime has converged on the desired statistics; null when none is set.
    pub statistics_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Endpoint attributes (e.g. address).
    pub attributes: Option<Vec<EndpointAttribute>>,
    /// Runtimes reporting the endpoint (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A name/value attribute of an MI endpoint.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct EndpointAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value.
    pub value: Option<String>,
}

/// A page of MI inbound endpoints.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct InboundEndpointsPage {
    /// This page's inbound endpoints.
    pub items: Vec<InboundEndpoint>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI inbound endpoint.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct InboundEndpoint {
    /// Inbound endpoint name.
    pub name: String,
    /// Protocol (e.g. `http`, `jms`).
    pub protocol: Option<String>,
    /// Sequence that processes messages.
    pub sequence: Option<String>,
    /// Statistics: `enabled` or `disabled`.
    pub statistics: Option<String>,
    /// Whether every runtime has converged on the desired statistics; null when none is set.
    pub statistics_in_sync: Option<bool>,
    /// Sequence run on errors.
    pub on_error: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Tracing: `enabled` or `disabled`.
    pub tracing: String,
    /// Whether every runtime has converged on the desired tracing; null when none is set.
    pub tracing_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Runtimes reporting the inbound endpoint (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI sequences.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct SequencesPage {
    /// This page's sequences.
    pub items: Vec<Sequence>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI sequence.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Sequence {
    /// Sequence name.
    pub name: String,
    /// Sequence type.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// Container (e.g. the composite app).
    pub container: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Tracing: `enabled` or `disabled`.
    pub tracing: String,
    /// Whether every runtime has converged on the desired tracing; null when none is set.
    pub tracing_in_sync: Option<bool>,
    /// Statistics: `enabled` or `disabled`.
    pub statistics: String,
    /// Whether every runtime has converged on the desired statistics; null when none is set.
    pub statistics_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Runtimes reporting the sequence (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI tasks.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct TasksPage {
    /// This page's tasks.
    pub items: Vec<Task>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI scheduled task.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Task {
    /// Task name.
    pub name: String,
    /// Implementation class.
    #[graphql(name = "class")]
    pub class_name: Option<String>,
    /// Task group.
    pub group: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Runtimes reporting the task (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI templates.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct TemplatesPage {
    /// This page's templates.
    pub items: Vec<Template>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI template (sequence or endpoint template).
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Template {
    /// Template name.
    pub name: String,
    /// Template type (sequence or endpoint).
    #[graphql(name = "type")]
    pub kind: String,
    /// Tracing: `enabled` or `disabled`.
    pub tracing: String,
    /// Statistics: `enabled` or `disabled`.
    pub statistics: String,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Runtimes reporting the template (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI message stores.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MessageStoresPage {
    /// This page's message stores.
    pub items: Vec<MessageStore>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI message store.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MessageStore {
    /// Message store name.
    pub name: String,
    /// Store type.
    #[graphql(name = "type")]
    pub kind: String,
    /// Number of messages stored.
    pub size: i32,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Runtimes reporting the message store (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI message processors.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MessageProcessorsPage {
    /// This page's message processors.
    pub items: Vec<MessageProcessor>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI message processor.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MessageProcessor {
    /// Message processor name.
    pub name: String,
    /// Processor type.
    #[graphql(name = "type")]
    pub kind: String,
    /// Implementation class.
    #[graphql(name = "class")]
    pub class_name: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Runtimes reporting the message processor (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI local entries.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct LocalEntriesPage {
    /// This page's local entries.
    pub items: Vec<LocalEntry>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI local entry.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct LocalEntry {
    /// Local entry name.
    pub name: String,
    /// Entry type.
    #[graphql(name = "type")]
    pub kind: String,
    /// Entry value.
    pub value: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Runtimes reporting the local entry (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI data services.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DataServicesPage {
    /// This page's data services.
    pub items: Vec<DataService>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI data service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DataService {
    /// Data service name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// WSDL URL.
    pub wsdl: Option<String>,
    /// `Active` or `Faulty`.
    pub state: String,
    /// Deployment status, when faulty.
    pub status: Option<String>,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Composite app that deployed it.
    pub composite_app: Option<String>,
    /// Deployment error, when faulty.
    pub error_message: Option<String>,
    /// Runtimes reporting the data service (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI composite apps.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct CompositeAppsPage {
    /// This page's composite apps.
    pub items: Vec<CompositeApp>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI composite application (CAR).
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct CompositeApp {
    /// Composite app name.
    pub name: String,
    /// Id of the component it belongs to.
    pub component_id: Option<String>,
    /// Composite app version.
    pub version: Option<String>,
    /// `Active` or `Faulty`.
    pub state: String,
    /// Deployment status, when faulty.
    pub status: Option<String>,
    /// Deployment error, when faulty.
    pub error_message: Option<String>,
    /// Artifacts the composite app deploys.
    pub artifacts: Option<Vec<CompositeAppArtifact>>,
    /// Runtimes reporting the composite app (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// An artifact deployed by a composite app.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct CompositeAppArtifact {
    /// Artifact name.
    pub name: String,
    /// Artifact type.
    #[graphql(name = "type")]
    pub kind: String,
}

/// A page of MI data sources.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DataSourcesPage {
    /// This page's data sources.
    pub items: Vec<DataSource>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI data source.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DataSource {
    /// Data source name.
    pub name: String,
    /// Data source type.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// JDBC driver class.
    pub driver: Option<String>,
    /// Connection URL.
    pub url: Option<String>,
    /// Database user name.
    pub username: Option<String>,
    /// State; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Runtimes reporting the data source (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI connectors.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ConnectorsPage {
    /// This page's connectors.
    pub items: Vec<Connector>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI connector.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Connector {
    /// Connector name.
    pub name: String,
    /// Connector package.
    #[graphql(name = "package")]
    pub package_name: String,
    /// Connector version.
    pub version: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Desired or observed state; emitted as "enabled"/"disabled".
    pub state: ArtifactState,
    /// Whether every runtime has converged on the desired state; null when none is set.
    pub state_in_sync: Option<bool>,
    /// Runtimes reporting the connector (merged lists only).
    pub runtime_ids: Option<Vec<String>>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// A page of MI registry resources.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RegistryResourcesPage {
    /// This page's registry resources.
    pub items: Vec<RegistryResource>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
}

/// An MI registry resource.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RegistryResource {
    /// Resource name.
    pub name: String,
    /// Resource (media) type.
    #[graphql(name = "type")]
    pub kind: String,
    /// Runtimes reporting the resource (non-null, unlike the other artifacts).
    pub runtime_ids: Vec<String>,
    /// Per-runtime status (merged lists only).
    pub runtimes: Option<Vec<ArtifactRuntimeInfo>>,
}

/// Text read live from an MI runtime (source, WSDL, log file, registry file).
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct FetchableText {
    /// The text; "" while preparing.
    pub content: String,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// Name/value parameters read live from an MI runtime.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct FetchableParameters {
    /// The parameters, in order; empty while preparing.
    pub parameters: Vec<Parameter>,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// A name/value parameter.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Parameter {
    /// Parameter name.
    pub name: String,
    /// Parameter value.
    pub value: String,
}

/// A data service's details read live from an MI runtime.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct FetchableDataService {
    /// The details; null while preparing.
    pub data_service: Option<MgmtDataServiceInfo>,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// A data service as MI's management API describes it.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MgmtDataServiceInfo {
    /// Service name.
    pub service_name: String,
    /// Service description.
    pub service_description: Option<String>,
    /// WSDL 1.1 URL.
    #[graphql(name = "wsdl1_1")]
    pub wsdl1_1: Option<String>,
    /// WSDL 2.0 URL.
    #[graphql(name = "wsdl2_0")]
    pub wsdl2_0: Option<String>,
    /// Swagger (OpenAPI) URL.
    #[graphql(name = "swagger_url")]
    pub swagger_url: Option<String>,
    /// Data sources the service uses.
    pub data_sources: Vec<MgmtDataServiceDataSource>,
    /// Queries of the service.
    pub queries: Vec<MgmtDataServiceQuery>,
    /// Resources of the service.
    pub resources: Vec<MgmtDataServiceResource>,
    /// Operations of the service.
    pub operations: Vec<MgmtDataServiceOperation>,
    /// Service configuration (XML text).
    pub configuration: Option<String>,
    /// Service group name.
    pub service_group_name: Option<String>,
}

/// A data source used by a data service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MgmtDataServiceDataSource {
    /// Data source id.
    pub data_source_id: String,
    /// Data source type.
    pub data_source_type: Option<String>,
}

/// A query of a data service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MgmtDataServiceQuery {
    /// Query id.
    pub id: String,
    /// Data source the query runs on.
    pub data_source_id: Option<String>,
    /// Namespace of the query's result.
    pub namespace: Option<String>,
}

/// A resource of a data service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MgmtDataServiceResource {
    /// Resource path.
    pub resource_path: String,
    /// HTTP method.
    pub resource_method: Option<String>,
    /// Query the resource calls.
    pub resource_query: Option<String>,
}

/// An operation of a data service.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MgmtDataServiceOperation {
    /// Operation name.
    pub operation_name: String,
    /// Query the operation calls.
    pub query_name: Option<String>,
}

/// Why a composite app failed to deploy on one runtime.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct CompositeAppFaultStackTrace {
    /// Runtime id.
    pub runtime_id: String,
    /// Composite app name.
    pub app_name: String,
    /// The fault's stack trace.
    pub fault_stack_trace: String,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// Why a data service failed to deploy on one runtime.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DataServiceFaultStackTrace {
    /// Runtime id.
    pub runtime_id: String,
    /// Data service name.
    pub service_name: String,
    /// The fault's stack trace.
    pub fault_stack_trace: String,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

// ---------------------------------------------------------------------------
// 5.9 Loggers
// ---------------------------------------------------------------------------

/// A page of one runtime's loggers.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct LoggersPage {
    /// This page's loggers.
    pub items: Vec<Logger>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// A logger of one runtime: a BI module, or an MI logger.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct Logger {
    /// MI logger name; null for BI modules.
    pub logger_name: Option<String>,
    /// BI module, or MI logger class/category.
    pub component_name: String,
    /// Level (the desired level when one is set).
    pub log_level: LogLevel,
    /// Whether the runtime has converged on the desired level; null when none is set.
    pub log_level_in_sync: Option<bool>,
    /// Runtime id.
    pub runtime_id: String,
}

/// A page of loggers merged across the replicas of an integration.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct LoggerGroupsPage {
    /// This page's logger groups.
    pub items: Vec<LoggerGroup>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
    /// True while any replica has not answered yet.
    pub preparing: bool,
    /// True when any replica's answer was stale.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// The same logger and level across the replicas of an integration in one environment.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct LoggerGroup {
    /// MI logger name; null for BI modules.
    pub logger_name: Option<String>,
    /// BI module, or MI logger class/category.
    pub component_name: String,
    /// Level (the desired level when one is set).
    pub log_level: LogLevel,
    /// Whether every replica has converged on the desired level (always true for MI).
    pub log_level_in_sync: Option<bool>,
    /// The replicas reporting this logger at this level.
    pub runtime_ids: Vec<String>,
}

/// A log level change on one or more runtimes.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct UpdateLogLevelInput {
    /// Runtimes to change (at least one).
    pub runtime_ids: Vec<String>,
    /// Optional hint; otherwise taken from the first runtime.
    pub component_type: Option<RuntimeType>,
    /// BI: module name (required for BI).
    pub component_name: Option<String>,
    /// BI: optional package qualifier.
    pub component_package: Option<String>,
    /// MI: logger name (required for MI).
    pub logger_name: Option<String>,
    /// MI: set only to create a new logger.
    pub logger_class: Option<String>,
    /// The new level.
    pub log_level: LogLevel,
    /// Client-chosen id (at most 59 characters); resending it polls the queued write.
    pub request_id: Option<String>,
}

/// Result of `updateLogLevel`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct UpdateLogLevelResponse {
    /// Whether the change was applied or recorded.
    pub success: bool,
    /// Explanation.
    pub message: String,
    /// Always empty.
    pub command_ids: Vec<String>,
    /// True while the runtime has not confirmed the write yet.
    pub preparing: bool,
    /// True when the answer is superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// Removal of an MI logger from one or more runtimes.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct DeleteLoggerInput {
    /// Runtimes to change (at least one).
    pub runtime_ids: Vec<String>,
    /// Logger to remove.
    pub logger_name: String,
    /// Client-chosen id (at most 59 characters); resending it polls the queued write.
    pub request_id: Option<String>,
}

/// Result of `deleteLogger`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct DeleteLoggerResponse {
    /// Whether the logger was removed.
    pub success: bool,
    /// Explanation.
    pub message: String,
    /// True while the runtime has not confirmed the write yet.
    pub preparing: bool,
    /// True when the answer is superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

// ---------------------------------------------------------------------------
// 5.10 Log files (MI)
// ---------------------------------------------------------------------------

/// A page of an MI runtime's log files.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct LogFilesResponse {
    /// Number of files before paging.
    pub count: i32,
    /// This page's files.
    pub files: Vec<LogFile>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// An MI log file.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct LogFile {
    /// File name.
    pub file_name: String,
    /// Size as reported by MI, e.g. "12.5 KB".
    pub size: String,
}

// ---------------------------------------------------------------------------
// 5.11 MI runtime users
// ---------------------------------------------------------------------------

/// A page of an MI runtime's users.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MIUsersPage {
    /// This page's users.
    pub items: Vec<MIUser>,
    /// Paging of the whole list.
    pub page_info: PageInfo,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// A user of an MI runtime's management API.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MIUser {
    /// User name.
    pub username: String,
    /// User store domain: `primary` unless MI reports `domain/username`.
    pub domain: String,
    /// Whether the user is an administrator.
    pub is_admin: bool,
}

/// Result of `addMIUser` and `deleteMIUser`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MIUserOperationResponse {
    /// User name.
    pub username: String,
    /// `Added` or `Deleted`.
    pub status: String,
    /// True while the runtime has not confirmed the write yet.
    pub preparing: bool,
    /// True when the answer is superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

// ---------------------------------------------------------------------------
// 5.12 Registry browser (MI)
// ---------------------------------------------------------------------------

/// The entries of an MI registry directory.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RegistryDirectoryResponse {
    /// Number of entries returned.
    pub count: i32,
    /// The entries.
    pub items: Vec<RegistryDirectoryItem>,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// An entry of an MI registry directory.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RegistryDirectoryItem {
    /// Entry name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Whether the entry is a directory.
    pub is_directory: bool,
    /// Properties of the entry.
    pub properties: Vec<RegistryProperty>,
}

/// A name/value property of a registry entry.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RegistryProperty {
    /// Property name.
    pub name: String,
    /// Property value.
    pub value: String,
}

/// Metadata of an MI registry resource.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RegistryResourceMetadata {
    /// Resource name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

/// The properties of an MI registry resource.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct RegistryPropertiesResponse {
    /// Number of properties returned.
    pub count: i32,
    /// The properties.
    pub properties: Vec<RegistryProperty>,
    /// True while no answer has arrived yet; the other members are then defaults.
    pub preparing: bool,
    /// True when the data is real but superseded and being refetched.
    pub stale: bool,
    /// When to ask again, in milliseconds (0 when settled).
    pub retry_after_ms: i32,
}

// ---------------------------------------------------------------------------
// 5.13 Artifact and listener control
// ---------------------------------------------------------------------------

/// Turn an artifact of an integration on or off.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ArtifactStatusChangeInput {
    /// Integration id.
    pub component_id: String,
    /// Backend artifact type (e.g. `api`, `proxy-service`).
    pub artifact_type: String,
    /// Artifact name.
    pub artifact_name: String,
    /// New state.
    pub status: ArtifactState,
    /// Limits the change to one environment.
    pub environment_id: Option<String>,
}

/// Result of `updateArtifactStatus`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ArtifactStatusChangeResponse {
    /// `SUCCESS` or `FAILED`.
    pub status: Status,
    /// Explanation.
    pub message: String,
    /// Number of runtimes the change reached.
    pub success_count: i32,
    /// Number of runtimes the change failed on.
    pub failed_count: i32,
    /// Per-runtime lines (empty for this mutation).
    pub details: Vec<String>,
}

/// Turn tracing of an artifact on or off.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ArtifactTracingChangeInput {
    /// Integration id.
    pub component_id: String,
    /// Environment id.
    pub environment_id: String,
    /// Backend artifact type (e.g. `api`, `proxy-service`).
    pub artifact_type: String,
    /// Artifact name.
    pub artifact_name: String,
    /// New tracing state.
    pub trace: ArtifactState,
}

/// Result of `updateArtifactTracingStatus`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ArtifactTracingChangeResponse {
    /// `SUCCESS` or `FAILED`.
    pub status: Status,
    /// Explanation.
    pub message: String,
    /// Number of runtimes the change reached.
    pub success_count: i32,
    /// Number of runtimes the change failed on.
    pub failed_count: i32,
    /// Per-runtime lines (empty for this mutation).
    pub details: Vec<String>,
}

/// Turn statistics of an artifact on or off.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ArtifactStatisticsChangeInput {
    /// Integration id.
    pub component_id: String,
    /// Environment id.
    pub environment_id: String,
    /// Backend artifact type (e.g. `api`, `proxy-service`).
    pub artifact_type: String,
    /// Artifact name.
    pub artifact_name: String,
    /// New statistics state.
    pub statistics: ArtifactState,
}

/// Result of `updateArtifactStatisticsStatus`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ArtifactStatisticsChangeResponse {
    /// `SUCCESS` or `FAILED`.
    pub status: Status,
    /// Explanation.
    pub message: String,
    /// Number of runtimes the change reached.
    pub success_count: i32,
    /// Number of runtimes the change failed on.
    pub failed_count: i32,
    /// Per-runtime lines (empty for this mutation).
    pub details: Vec<String>,
}

/// Run an MI task once.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ArtifactTriggerInput {
    /// Integration id.
    pub component_id: String,
    /// Task name.
    pub task_name: String,
    /// Limits the trigger to one environment.
    pub environment_id: Option<String>,
}

/// Result of `triggerArtifact`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ArtifactTriggerResponse {
    /// `SUCCESS` or `FAILED`.
    pub status: Status,
    /// Explanation.
    pub message: String,
    /// Number of runtimes the command reached.
    pub success_count: i32,
    /// Number of runtimes the command failed on.
    pub failed_count: i32,
    /// One line per runtime, e.g. `Runtime <id>: Command sent`.
    pub details: Vec<String>,
}

/// Start or stop a listener on one or more runtimes.
#[derive(GraphQLInputObject, Debug, Clone)]
pub struct ListenerControlInput {
    /// Runtimes to change.
    pub runtime_ids: Vec<String>,
    /// Listener name.
    pub listener_name: String,
    /// Qualifies the listener name for BI (module of the listener).
    pub listener_package: Option<String>,
    /// Port of the listener.
    pub port: Option<i32>,
    /// `START` or `STOP`.
    pub action: ControlAction,
}

/// Result of `updateListenerState`.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ListenerControlResponse {
    /// True once the desired state is recorded.
    pub success: bool,
    /// Explanation.
    pub message: String,
    /// Always empty.
    pub command_ids: Vec<String>,
}

// ---------------------------------------------------------------------------
// 5.14 System, observability, Moesif
// ---------------------------------------------------------------------------

/// About the server.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct SystemInfo {
    /// Server version.
    pub version: String,
}

/// Whether observability metrics are configured.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct ObservabilityMetricsConfigStatus {
    /// Whether metrics are configured.
    pub configured: bool,
}

/// Whether the Moesif metrics dashboards exist.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MoesifMetricsConfigStatus {
    /// Whether the dashboards were created.
    pub dashboards_created: bool,
}

/// Whether Moesif logs are configured.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MoesifLogsConfigStatus {
    /// Whether logs are configured.
    pub logs_configured: bool,
}

/// An embeddable Moesif dashboard.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MoesifDashboardEmbed {
    /// URL to embed.
    pub embed_url: String,
    /// Access token for the embed.
    pub token: String,
}

/// A Moesif application.
#[derive(GraphQLObject, Debug, Clone, Default)]
pub struct MoesifApplication {
    /// Application id.
    pub id: String,
    /// Application name.
    pub name: String,
}
