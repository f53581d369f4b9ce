//! Which topics the client wants, and the subscribe / unsubscribe messages that get it there.
//!
//! The wanted set follows the screen: `repos` always, the selected repo's jobs, branches and
//! tasks, and the open job detail. On every new connection everything wanted is subscribed again,
//! each topic with `since` its last applied position, so a reconnect resumes instead of
//! reloading. A gap is repaired by unsubscribing and subscribing again since the last position
//! (the server refuses a second subscription to a topic the connection already holds).

use std::collections::{BTreeSet, HashMap};

use gantry_types::Topic;
use gantry_types::ws::ClientMessage;

use crate::net::NetCommand;
use crate::state::{Resubscribe, ViewModel};

#[derive(Debug, Default)]
pub struct Subscriptions {
    /// The live connection's generation, if one is up.
    generation: Option<u64>,
    wanted: BTreeSet<Topic>,
    next_id: u64,
    /// Subscribe request ids and their topics, to name the topic when the server refuses one.
    requests: HashMap<u64, String>,
}

impl Subscriptions {
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// The topic a subscribe request was for.
    pub fn request_topic(&self, id: u64) -> Option<&str> {
        self.requests.get(&id).map(String::as_str)
    }

    /// A connection is up: subscribe to everything wanted, resuming where possible.
    pub fn connected(&mut self, generation: u64, model: &mut ViewModel) -> Vec<NetCommand> {
        self.generation = Some(generation);
        self.requests.clear();
        let wanted: Vec<Topic> = self.wanted.iter().cloned().collect();
        wanted
            .into_iter()
            .filter_map(|topic| self.subscribe(&topic.to_string(), model))
            .collect()
    }

    /// The connection is down: nothing can be sent until the next one.
    pub fn disconnected(&mut self) {
        self.generation = None;
    }

    /// Makes `wanted` the subscribed set: tracks and subscribes new topics, forgets and
    /// unsubscribes the others.
    pub fn want(&mut self, wanted: BTreeSet<Topic>, model: &mut ViewModel) -> Vec<NetCommand> {
        let mut commands = Vec::new();
        let gone: Vec<Topic> = self.wanted.difference(&wanted).cloned().collect();
        let new: Vec<Topic> = wanted.difference(&self.wanted).cloned().collect();
        for topic in gone {
            let name = topic.to_string();
            model.untrack(&name);
            if let Some(command) = self.message(ClientMessage::Unsubscribe {
                id: None,
                topic: name,
            }) {
                commands.push(command);
            }
        }
        for topic in &new {
            model.track(topic);
            commands.extend(self.subscribe(&topic.to_string(), model));
        }
        self.wanted = wanted;
        commands
    }

    /// Repairs a gap: unsubscribe, then subscribe since the last applied position.
    pub fn resubscribe(&mut self, gap: Resubscribe, model: &mut ViewModel) -> Vec<NetCommand> {
        if !self.wanted.iter().any(|t| t.to_string() == gap.topic) {
            return Vec::new();
        }
        let mut commands: Vec<NetCommand> = self
            .message(ClientMessage::Unsubscribe {
                id: None,
                topic: gap.topic.clone(),
            })
            .into_iter()
            .collect();
        commands.extend(self.subscribe(&gap.topic, model));
        commands
    }

    fn subscribe(&mut self, topic: &str, model: &mut ViewModel) -> Option<NetCommand> {
        self.generation?;
        self.next_id += 1;
        let id = self.next_id;
        self.requests.insert(id, topic.to_owned());
        model.awaiting(topic);
        self.message(ClientMessage::Subscribe {
            id: Some(id),
            topic: topic.to_owned(),
            since: model.cursor(topic),
        })
    }

    fn message(&self, message: ClientMessage) -> Option<NetCommand> {
        Some(NetCommand::Send {
            generation: self.generation?,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_types::ws::{Cursor, ServerMessage};

    fn sent(commands: &[NetCommand]) -> Vec<(String, String, Option<i64>)> {
        commands
            .iter()
            .filter_map(|c| match c {
                NetCommand::Send { message, .. } => Some(message.clone()),
                NetCommand::Rest(_) => None,
            })
            .map(|m| match m {
                ClientMessage::Subscribe { topic, since, .. } => {
                    ("subscribe".to_owned(), topic, since.map(|c| c.position))
                }
                ClientMessage::Unsubscribe { topic, .. } => ("unsubscribe".to_owned(), topic, None),
                ClientMessage::Ping { .. } => ("ping".to_owned(), String::new(), None),
            })
            .collect()
    }

    #[test]
    fn reconnecting_resumes_every_wanted_topic_since_its_cursor() {
        let mut model = ViewModel::new();
        let mut subs = Subscriptions::default();
        // Wanted before any connection: nothing can be sent yet.
        let commands = subs.want(BTreeSet::from([Topic::Repos]), &mut model);
        assert!(commands.is_empty());
        let commands = subs.connected(1, &mut model);
        assert_eq!(
            sent(&commands),
            vec![("subscribe".into(), "repos".into(), None)]
        );
        model.apply(ServerMessage::Snapshot {
            id: Some(1),
            topic: "repos".into(),
            epoch: "e".into(),
            position: 42,
            rows: vec![],
            reset: false,
        });
        subs.disconnected();
        let commands = subs.connected(2, &mut model);
        assert_eq!(
            sent(&commands),
            vec![("subscribe".into(), "repos".into(), Some(42))]
        );
        assert!(matches!(
            commands.first(),
            Some(NetCommand::Send { generation: 2, .. })
        ));
    }

    #[test]
    fn a_gap_unsubscribes_then_subscribes_since_the_cursor() {
        let mut model = ViewModel::new();
        let mut subs = Subscriptions::default();
        subs.connected(1, &mut model);
        subs.want(BTreeSet::from([Topic::Repos]), &mut model);
        let commands = subs.resubscribe(
            Resubscribe {
                topic: "repos".into(),
                since: Cursor {
                    epoch: "e".into(),
                    position: 7,
                },
            },
            &mut model,
        );
        // The model has no cursor for it (nothing applied): since follows the model.
        assert_eq!(
            sent(&commands),
            vec![
                ("unsubscribe".into(), "repos".into(), None),
                ("subscribe".into(), "repos".into(), None)
            ]
        );
    }

    #[test]
    fn topics_no_longer_wanted_are_unsubscribed_and_forgotten() {
        let mut model = ViewModel::new();
        let mut subs = Subscriptions::default();
        subs.connected(1, &mut model);
        subs.want(
            BTreeSet::from([Topic::Repos, Topic::RepoJobs("a".into())]),
            &mut model,
        );
        let commands = subs.want(
            BTreeSet::from([Topic::Repos, Topic::RepoJobs("b".into())]),
            &mut model,
        );
        assert_eq!(
            sent(&commands),
            vec![
                ("unsubscribe".into(), "repo/a/jobs".into(), None),
                ("subscribe".into(), "repo/b/jobs".into(), None)
            ]
        );
        assert!(!model.is_tracked("repo/a/jobs"));
        assert!(model.is_tracked("repo/b/jobs"));
    }
}
