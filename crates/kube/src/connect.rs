//! Which API server, as whom: a kubeconfig (`--kubeconfig`, else `KUBECONFIG` or
//! `~/.kube/config`) with an optional context, or the in-cluster service account.

use crate::KubeError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// A kubeconfig file; without it `KUBECONFIG`, `~/.kube/config`, then in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig other than its current one.
    pub context: Option<String>,
}

/// A client and the server it talks to, for messages.
#[derive(Clone)]
pub struct Session {
    pub client: Client,
    pub server: String,
}

impl Connection {
    pub async fn connect(&self) -> Result<Session, KubeError> {
        let config = self.config().await?;
        let server = config.cluster_url.to_string();
        let server = server.trim_end_matches('/').to_string();
        let client = Client::try_from(config).map_err(|e| {
            KubeError::Config(format!(
                "cannot build a client for {server}: {}",
                innermost(&e)
            ))
        })?;
        Ok(Session { client, server })
    }

    async fn config(&self) -> Result<Config, KubeError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        if let Some(path) = &self.kubeconfig {
            let shown = path.display();
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| KubeError::Config(format!("kubeconfig {shown}: {}", innermost(&e))))?;
            return Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| KubeError::Config(format!("kubeconfig {shown}: {}", innermost(&e))));
        }
        match Config::from_kubeconfig(&options).await {
            Ok(config) => Ok(config),
            // A context was asked for: only a kubeconfig has contexts.
            Err(e) if self.context.is_some() => Err(KubeError::Config(format!(
                "kubeconfig (KUBECONFIG or ~/.kube/config): {}",
                innermost(&e)
            ))),
            Err(kubeconfig) => Config::incluster().map_err(|in_cluster| {
                KubeError::Config(format!(
                    "no usable kubeconfig ({}) and not in a cluster ({}); pass --kubeconfig",
                    innermost(&kubeconfig),
                    innermost(&in_cluster)
                ))
            }),
        }
    }
}

/// The deepest cause of an error: the part a user can act on ("Connection refused").
pub(crate) fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    let mut messages = vec![error.to_string()];
    while let Some(next) = cause.source() {
        messages.push(next.to_string());
        cause = next;
    }
    // Outer layers often repeat the inner message; the last one says what happened. Its first
    // line: a YAML error goes on with a snippet of the file, and errors are one line.
    let last = messages.pop().unwrap_or_default();
    last.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// One line for a failed request: unreachable, refused (which verb on what), or failed.
pub(crate) fn request_error(
    server: &str,
    verb: &'static str,
    resource: &str,
    error: kube::Error,
) -> KubeError {
    match error {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            KubeError::Refused {
                server: server.to_string(),
                verb,
                resource: resource.to_string(),
                message: status.message.clone(),
            }
        }
        kube::Error::Api(status) => KubeError::Failed {
            server: server.to_string(),
            verb,
            resource: resource.to_string(),
            message: format!("{} ({})", status.message, status.code),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => KubeError::Unreachable {
            server: server.to_string(),
            message: innermost(&error),
        },
        other => KubeError::Failed {
            server: server.to_string(),
            verb,
            resource: resource.to_string(),
            message: innermost(&other),
        },
    }
}
