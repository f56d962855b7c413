//! Synthetic clusters for benchmarks and for side-by-side runs with other analyzers:
//! namespaces, workloads with replicas, realistic labels and a realistic NetworkPolicy mix,
//! deterministic by seed. The output is ordinary manifests (`palisade`, NCA and kubectl read them).

mod policies;
mod topology;
mod yaml;

pub use topology::{Generated, GeneratedNamespace, Mode, Params, Pod, Workload, generate};

use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("--namespaces must be at least 1 (kube-system is added on top)")]
    NoNamespaces,
    #[error("--pods {pods} is too many: pod IPs come from 10.0.0.0/8, which holds at most {max}")]
    TooManyPods { pods: usize, max: usize },
    #[error("{}: directory is not empty; generate into a new or empty directory", .0.display())]
    OutDirNotEmpty(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes the cluster `params` describe to `out`: a directory for one file per namespace
/// (created if missing, must be empty), or `-` for one multi-document stream on stdout.
pub fn run_generate(params: &Params, out: &Path) -> Result<(), SynthError> {
    let generated = generate(params)?;
    if out.as_os_str() == "-" {
        let stdout = io::stdout();
        let mut stream = io::BufWriter::with_capacity(1 << 16, stdout.lock());
        match generated
            .write_stream(&mut stream)
            .and_then(|()| stream.flush())
        {
            // `palisade generate --out - | head` stops reading early; that is no failure.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            result => result.map_err(|source| SynthError::Io {
                path: PathBuf::from("<stdout>"),
                source,
            }),
        }
    } else {
        generated.write_dir(out)
    }
}

impl Generated {
    /// One multi-document YAML stream: every namespace in order, kube-system first.
    pub fn write_stream(&self, out: &mut impl Write) -> io::Result<()> {
        for ns in &self.namespaces {
            self.write_namespace(ns, out)?;
        }
        Ok(())
    }

    /// `kube-system.yaml`, `payments-staging.yaml`, …: one file per namespace holding the
    /// Namespace, its pods or workloads, and its policies.
    pub fn write_dir(&self, dir: &Path) -> Result<(), SynthError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SynthError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        if std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .next()
            .is_some()
        {
            return Err(SynthError::OutDirNotEmpty(dir.to_path_buf()));
        }
        for ns in &self.namespaces {
            let path = dir.join(format!("{}.yaml", ns.namespace.name));
            let file = std::fs::File::create(&path).map_err(io_err(&path))?;
            let mut out = io::BufWriter::with_capacity(1 << 16, file);
            self.write_namespace(ns, &mut out)
                .and_then(|()| out.flush())
                .map_err(io_err(&path))?;
        }
        Ok(())
    }

    fn write_namespace(&self, ns: &GeneratedNamespace, out: &mut impl Write) -> io::Result<()> {
        let mut doc = yaml::Emitter::new(out);
        doc.namespace(&ns.namespace)?;
        for workload in &ns.workloads {
            match self.mode {
                Mode::Pods => {
                    for pod in &workload.pods {
                        doc.pod(&ns.namespace.name, workload, pod)?;
                    }
                }
                Mode::Workloads => doc.deployment(&ns.namespace.name, workload)?,
            }
        }
        for policy in &ns.policies {
            doc.policy(policy)?;
        }
        doc.finish()
    }
}
