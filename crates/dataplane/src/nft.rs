//! Running `nft`: atomic replacement of the table, check-only loads, reading back what is there.

use crate::render::Ruleset;
use crate::table::{STATE_SET, Stamp, TABLE, content_hash};
use std::io::Write;
use std::process::{Command, Stdio};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot read the output of {command}: {message}")]
    Output { command: String, message: String },
}

/// How [`Nft::apply`] made a table the one in force.
#[derive(Debug)]
pub enum Applied {
    /// Only what changed was touched.
    Changed,
    /// The whole table was replaced.
    Replaced,
    /// Applying the changes failed (with this error); the whole table was replaced.
    ReplacedAfterFailedChange(Error),
}

/// What a node's kernel holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableState {
    /// `(generation, digest)` when the table was written by a palisade agent.
    pub written_by_agent: Option<(u32, u64)>,
    /// The table is as the agent that wrote it sealed it: nothing changed it since.
    pub sealed_and_intact: bool,
    pub rules: usize,
    pub set_elements: usize,
}

/// Runs a program (`nft`, `conntrack`) in the current network namespace, or in a named one
/// through `ip netns exec`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runner {
    netns: Option<String>,
}

impl Runner {
    /// Runs in the caller's network namespace (the agent runs inside its node's).
    pub fn here() -> Self {
        Self { netns: None }
    }

    pub fn in_netns(name: impl Into<String>) -> Self {
        Self {
            netns: Some(name.into()),
        }
    }

    /// The named namespace the programs run in; `None`: the caller's.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        command.args(args);
        command
    }

    /// Starts `program args…` with its stdout piped to the caller.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Result<std::process::Child, Error> {
        self.command(program, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Spawn {
                command: format!("{program} {}", args.join(" ")),
                source,
            })
    }

    /// Runs `program args…` with `stdin`, returning stdout.
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
        let mut command = self.command(program, args);
        let shown = format!("{program} {}", args.join(" "));
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_error = |source| Error::Spawn {
            command: shown.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let pipe = child.stdin.take();
        // Input is written while the output is read: a program that answers every input line
        // (`conntrack -R`) would otherwise block on a full output pipe while we block on input.
        let (written, output) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || match (stdin, pipe) {
                (Some(text), Some(mut pipe)) => pipe.write_all(text.as_bytes()),
                _ => Ok(()),
            });
            let output = child.wait_with_output();
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")));
            (written, output)
        });
        let output = output.map_err(spawn_error)?;
        // A program that failed may not have read all its input: its own error says why.
        if !output.status.success() {
            return Err(Error::Failed {
                command: shown,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        written.map_err(spawn_error)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The nftables side of a node.
#[derive(Clone, Debug, Default)]
pub struct Nft {
    runner: Runner,
}

impl Nft {
    pub fn new(runner: Runner) -> Self {
        Self { runner }
    }

    /// Makes `ruleset` the table in force, stamped `generation`, in one transaction: the
    /// changes from `in_force` (what this agent applied last) when they are less work than
    /// loading the whole table, a replace otherwise or when the change fails (the kernel's
    /// table is not what the agent thinks: someone changed it).
    pub fn apply(
        &self,
        ruleset: &Ruleset,
        generation: u32,
        in_force: Option<&Ruleset>,
    ) -> Result<Applied, Error> {
        let failed = match in_force.and_then(|old| ruleset.delta(old, generation)) {
            Some(delta) => match self.load(&delta) {
                Ok(()) => return Ok(Applied::Changed),
                Err(e) => Some(e),
            },
            None => None,
        };
        self.load(&ruleset.table.replace(&ruleset.stamp(generation)))?;
        Ok(match failed {
            Some(e) => Applied::ReplacedAfterFailedChange(e),
            None => Applied::Replaced,
        })
    }

    fn load(&self, transaction: &str) -> Result<(), Error> {
        self.runner
            .run("nft", &["-f", "-"], Some(transaction))
            .map(drop)
    }

    /// Loads nothing; nft parses and checks the replace against the kernel.
    pub fn check(&self, ruleset: &Ruleset) -> Result<(), Error> {
        let transaction = ruleset.table.replace(&ruleset.stamp(0));
        self.runner
            .run("nft", &["-c", "-f", "-"], Some(&transaction))
            .map(drop)
    }

    /// Removes the table if there is one.
    pub fn remove(&self) -> Result<(), Error> {
        self.load(&format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n"
        ))
    }

    fn has_table(&self) -> Result<bool, Error> {
        let listing = self
            .runner
            .run("nft", &["-j", "list", "tables", "inet"], None)?;
        Ok(listing.contains(&format!("\"name\": \"{TABLE}\""))
            || listing.contains(&format!("\"name\":\"{TABLE}\"")))
    }

    /// The table's text as the kernel lists it; an error when there is none.
    fn list_text(&self) -> Result<String, Error> {
        self.runner
            .run("nft", &["list", "table", "inet", TABLE], None)
    }

    /// Seals the table in force, stamped `generation` and `digest`, with a hash of what the
    /// kernel lists ([`TableState::sealed_and_intact`] then holds until someone changes it);
    /// returns the stamp as sealed.
    pub fn seal(&self, generation: u32, digest: u64) -> Result<Stamp, Error> {
        let stamp = Stamp {
            generation,
            digest,
            content: Some(content_hash(&self.list_text()?)),
        };
        self.load(&stamp.restamp())?;
        Ok(stamp)
    }

    /// The stamp of the table in force when it is sealed and nothing changed it since;
    /// `None` when there is no table, it is not sealed, or it is not as sealed.
    pub fn intact_seal(&self) -> Result<Option<Stamp>, Error> {
        if !self.has_table()? {
            return Ok(None);
        }
        let listing = self.list_text()?;
        Ok(Stamp::parse_listing(&listing).filter(|stamp| stamp.seals(&listing)))
    }

    /// `nft monitor`: prints a line for every change to any table of the namespace.
    pub fn monitor(&self) -> Result<std::process::Child, Error> {
        self.runner.spawn("nft", &["monitor"])
    }

    /// The table as the kernel has it, `None` when there is none.
    pub fn current(&self) -> Result<Option<TableState>, Error> {
        if !self.has_table()? {
            return Ok(None);
        }
        let command = format!("nft -j list table inet {TABLE}");
        let json = self
            .runner
            .run("nft", &["-j", "list", "table", "inet", TABLE], None)?;
        let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| Error::Output {
            command: command.clone(),
            message: e.to_string(),
        })?;
        let items = value["nftables"].as_array().ok_or_else(|| Error::Output {
            command,
            message: "no \"nftables\" array".to_string(),
        })?;
        let mut state = TableState {
            written_by_agent: None,
            sealed_and_intact: false,
            rules: 0,
            set_elements: 0,
        };
        for item in items {
            if item.get("rule").is_some() {
                state.rules += 1;
            }
            for kind in ["set", "map"] {
                // The stamp is not one of the ruleset's elements.
                if item[kind]["name"] == STATE_SET {
                    continue;
                }
                if let Some(elements) = item[kind]["elem"].as_array() {
                    state.set_elements += elements.len();
                }
            }
        }
        // nft 1.0.6 leaves element comments out of its JSON; the text listing has them.
        let listing = self.list_text()?;
        let stamp = Stamp::parse_listing(&listing);
        state.written_by_agent = stamp.map(|s| (s.generation, s.digest));
        state.sealed_and_intact = stamp.is_some_and(|s| s.seals(&listing));
        Ok(Some(state))
    }
}
