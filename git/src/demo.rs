//! A small, deterministic demo repository for `gantry serve --demo` and for trying the
//! engine: a bare remote with a stack that needs restacking, one side branch (so the stack is
//! a tree) and one branch that conflicts with the trunk.
//!
//! History (every commit has a fixed author, committer and date, so ids never change):
//!
//! ```text
//! main:  init - lib - [stack pushed here] - retries=4 (conflicts with fix/retries) - readme - changelog
//!              \
//!               stack/1-api (2) - stack/2-model (2) - stack/3-ui (1) - stack/4-docs (1)
//!              |                                   \
//!              |                                    side/model-experiment (1)
//!               fix/retries (1: edits the line trunk's "retries=4" commit edits)
//! ```
//!
//! Restacking the repo moves the five stack branches onto the new trunk; `fix/retries`
//! conflicts in `config/settings.txt`.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::error::GitError;
use crate::runner::{Git, Location};
use crate::stack::TrackedBranch;

/// The demo's trunk.
pub const DEMO_TRUNK: &str = "main";

/// The demo branch whose restack conflicts with the trunk.
pub const DEMO_CONFLICT_BRANCH: &str = "fix/retries";

/// The file it conflicts in.
pub const DEMO_CONFLICT_FILE: &str = "config/settings.txt";

/// A demo remote ready to be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoRemote {
    /// The bare repository (use it as the remote URL).
    pub remote_path: PathBuf,
    /// The trunk's name (`main`).
    pub trunk: String,
    /// The tracked branches, parent first, with their bases (the parent tip each was created
    /// on), ready to store as stack metadata.
    pub branches: Vec<TrackedBranch>,
    /// The branch whose restack conflicts ([`DEMO_CONFLICT_BRANCH`]).
    pub conflict_branch: String,
}

struct Commit {
    branch: &'static str,
    /// Mark of the parent commit (None for the root).
    from: Option<usize>,
    message: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const SETTINGS_V1: &str = "timeout=30\nretries=3\nmode=safe\n";
const SETTINGS_TRUNK: &str = "timeout=30\nretries=4\nmode=safe\n";
const SETTINGS_FIX: &str = "timeout=30\nretries=5\nmode=safe\n";

/// Commits in creation order; mark = index + 1.
const HISTORY: &[Commit] = &[
    Commit {
        branch: "main",
        from: None,
        message: "initial commit",
        files: &[
            ("README.md", "# demo\n"),
            (DEMO_CONFLICT_FILE, SETTINGS_V1),
            ("src/app.txt", "app v1\n"),
        ],
    },
    Commit {
        branch: "main",
        from: Some(1),
        message: "add lib",
        files: &[("src/lib.txt", "lib v1\n")],
    },
    // 3, 4: stack/1-api
    Commit {
        branch: "stack/1-api",
        from: Some(2),
        message: "api: endpoints",
        files: &[("api/endpoints.txt", "GET /items\n")],
    },
    Commit {
        branch: "stack/1-api",
        from: Some(3),
        message: "api: pagination",
        files: &[("api/endpoints.txt", "GET /items\nGET /items?page=N\n")],
    },
    // 5, 6: stack/2-model
    Commit {
        branch: "stack/2-model",
        from: Some(4),
        message: "model: item",
        files: &[("model/item.txt", "struct Item\n")],
    },
    Commit {
        branch: "stack/2-model",
        from: Some(5),
        message: "model: page",
        files: &[("model/page.txt", "struct Page\n")],
    },
    // 7: stack/3-ui
    Commit {
        branch: "stack/3-ui",
        from: Some(6),
        message: "ui: list view",
        files: &[("ui/list.txt", "list view\n")],
    },
    // 8: stack/4-docs
    Commit {
        branch: "stack/4-docs",
        from: Some(7),
        message: "docs: usage",
        files: &[("docs/usage.md", "# usage\n")],
    },
    // 9: side/model-experiment
    Commit {
        branch: "side/model-experiment",
        from: Some(6),
        message: "experiment: cached pages",
        files: &[("experiments/cache.txt", "cache pages\n")],
    },
    // 10: fix/retries
    Commit {
        branch: "fix/retries",
        from: Some(2),
        message: "retry five times",
        files: &[(DEMO_CONFLICT_FILE, SETTINGS_FIX)],
    },
    // 11-13: trunk moves ahead
    Commit {
        branch: "main",
        from: Some(2),
        message: "retry four times",
        files: &[(DEMO_CONFLICT_FILE, SETTINGS_TRUNK)],
    },
    Commit {
        branch: "main",
        from: Some(11),
        message: "readme: describe the demo",
        files: &[("README.md", "# demo\n\nA stack of branches.\n")],
    },
    Commit {
        branch: "main",
        from: Some(12),
        message: "changelog",
        files: &[("CHANGELOG.md", "- retries=4\n")],
    },
];

/// (branch, parent, mark of the parent tip it was created on)
const TRACKED: &[(&str, &str, usize)] = &[
    ("stack/1-api", "main", 2),
    ("stack/2-model", "stack/1-api", 4),
    ("stack/3-ui", "stack/2-model", 6),
    ("stack/4-docs", "stack/3-ui", 7),
    ("side/model-experiment", "stack/2-model", 6),
    ("fix/retries", "main", 2),
];

const EPOCH: u64 = 1_700_000_000;

fn fast_import_stream() -> String {
    let mut s = String::new();
    for (i, c) in HISTORY.iter().enumerate() {
        let mark = i + 1;
        let when = EPOCH + 60 * mark as u64;
        s.push_str(&format!("commit refs/heads/{}\nmark :{mark}\n", c.branch));
        s.push_str(&format!(
            "author Demo Author <author@demo.invalid> {when} +0000\n"
        ));
        s.push_str(&format!(
            "committer Demo Committer <committer@demo.invalid> {when} +0000\n"
        ));
        s.push_str(&format!("data {}\n{}\n", c.message.len(), c.message));
        if let Some(from) = c.from {
            s.push_str(&format!("from :{from}\n"));
        }
        for (path, content) in c.files {
            s.push_str(&format!(
                "M 100644 inline {path}\ndata {}\n{content}\n",
                content.len()
            ));
        }
        s.push('\n');
    }
    s
}

/// Creates `<dir>/demo-remote.git` (a bare repository) with the history in the module docs
/// and returns its stack metadata. Fails if it already exists.
pub async fn create_demo_remote(git: &Git, dir: &Path) -> Result<DemoRemote, GitError> {
    let cancel = CancellationToken::new();
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| GitError::io(format!("creating {}", dir.display()), e))?;
    let remote_path = dir.join("demo-remote.git");
    git.command(Location::Nowhere)
        .args(["init", "--quiet", "--bare", "--initial-branch", DEMO_TRUNK])
        .arg(&remote_path)
        .run(&cancel)
        .await?;
    let marks = dir.join("demo-remote.marks");
    let mut export = std::ffi::OsString::from("--export-marks=");
    export.push(marks.as_os_str());
    git.command(Location::GitDir(&remote_path))
        .args(["fast-import", "--quiet"])
        .arg(export)
        .stdin(fast_import_stream())
        .run(&cancel)
        .await?;
    let text = tokio::fs::read_to_string(&marks)
        .await
        .map_err(|e| GitError::io("reading fast-import marks", e))?;
    let _ = tokio::fs::remove_file(&marks).await;
    let sha_of = |mark: usize| -> Result<String, GitError> {
        text.lines()
            .find_map(|l| {
                let (m, sha) = l.split_once(' ')?;
                (m == format!(":{mark}")).then(|| sha.to_string())
            })
            .ok_or_else(|| GitError::unexpected("fast-import marks", format!("no mark :{mark}")))
    };
    let branches = TRACKED
        .iter()
        .map(|(name, parent, mark)| Ok(TrackedBranch::new(*name, *parent, Some(sha_of(*mark)?))))
        .collect::<Result<Vec<_>, GitError>>()?;
    Ok(DemoRemote {
        remote_path,
        trunk: DEMO_TRUNK.to_string(),
        branches,
        conflict_branch: DEMO_CONFLICT_BRANCH.to_string(),
    })
}
