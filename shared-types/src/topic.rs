//! Topics name the views a client can subscribe to, and they are the unit of authorisation.

use std::fmt;
use std::str::FromStr;

/// A subscribable view. Its string form is the wire form (`repo/{id}/jobs`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Repos,
    RepoJobs(String),
    RepoBranches(String),
    RepoTasks(String),
    /// One job and its progress lines.
    Job(String),
}

impl Topic {
    /// The repo whose organisation decides who may see this topic, if it is about one repo.
    pub fn repo_id(&self) -> Option<&str> {
        match self {
            Self::RepoJobs(id) | Self::RepoBranches(id) | Self::RepoTasks(id) => Some(id),
            Self::Repos | Self::Job(_) => None,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repos => f.write_str("repos"),
            Self::RepoJobs(id) => write!(f, "repo/{id}/jobs"),
            Self::RepoBranches(id) => write!(f, "repo/{id}/branches"),
            Self::RepoTasks(id) => write!(f, "repo/{id}/tasks"),
            Self::Job(id) => write!(f, "job/{id}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTopic(pub String);

impl fmt::Display for InvalidTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown topic {:?}; expected repos, repo/ID/jobs, repo/ID/branches, repo/ID/tasks or job/ID",
            self.0
        )
    }
}

impl std::error::Error for InvalidTopic {}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl FromStr for Topic {
    type Err = InvalidTopic;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidTopic(s.chars().take(200).collect());
        let parts: Vec<&str> = s.split('/').collect();
        let topic = match parts.as_slice() {
            ["repos"] => Self::Repos,
            ["repo", id, "jobs"] => Self::RepoJobs((*id).to_owned()),
            ["repo", id, "branches"] => Self::RepoBranches((*id).to_owned()),
            ["repo", id, "tasks"] => Self::RepoTasks((*id).to_owned()),
            ["job", id] => Self::Job((*id).to_owned()),
            _ => return Err(invalid()),
        };
        match &topic {
            Topic::Repos => Ok(topic),
            Topic::RepoJobs(id)
            | Topic::RepoBranches(id)
            | Topic::RepoTasks(id)
            | Topic::Job(id) => {
                if valid_id(id) {
                    Ok(topic)
                } else {
                    Err(invalid())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_their_wire_form() {
        for wire in [
            "repos",
            "repo/r1/jobs",
            "repo/r1/branches",
            "repo/r1/tasks",
            "job/j-9",
        ] {
            let topic: Topic = wire.parse().unwrap();
            assert_eq!(topic.to_string(), wire);
        }
    }

    #[test]
    fn malformed_topics_are_refused() {
        for wire in [
            "",
            "repo",
            "repo//jobs",
            "repo/a/b/jobs",
            "job/",
            "job/a b",
            "repos/x",
            "repo/1/other",
        ] {
            assert!(wire.parse::<Topic>().is_err(), "{wire:?} parsed");
        }
    }
}
