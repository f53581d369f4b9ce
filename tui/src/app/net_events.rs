//! Network events to state: connection status (resubscribing on every new connection), pushed
//! messages (through the reducer, repairing gaps), and REST answers (shown at once).

use gantry_types::ws::ServerMessage;

use super::App;
use crate::error::RestError;
use crate::net::{ConnectionStatus, NetEvent, RestAnswer, RestOutcome, RestRequest, short_id};

impl App {
    /// Handles one event from the network task.
    pub fn handle_net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Status(status) => self.on_status(status),
            NetEvent::Message(message) => self.on_message(message),
            NetEvent::Rest(outcome) => self.on_rest(*outcome),
        }
        self.sync_subscriptions();
    }

    /// The network task stopped (it only does when the UI dropped its end, or it crashed).
    pub fn network_stopped(&mut self) {
        self.on_status(ConnectionStatus::Offline {
            reason: "the network task stopped".to_owned(),
            retrying: false,
        });
    }

    fn on_status(&mut self, status: ConnectionStatus) {
        match &status {
            ConnectionStatus::Live { generation } => {
                let commands = self.subscriptions.connected(*generation, &mut self.model);
                self.commands.extend(commands);
            }
            _ => self.subscriptions.disconnected(),
        }
        self.connection = status;
        self.dirty = true;
    }

    fn on_message(&mut self, message: ServerMessage) {
        if let ServerMessage::Error { id, code, message } = &message {
            // Answers to our own resubscribe dance: harmless, nothing to show.
            if code == "already_subscribed" || code == "not_subscribed" {
                return;
            }
            let topic = id.and_then(|id| self.subscriptions.request_topic(id));
            let text = match topic {
                Some(topic) => format!("{topic}: {message} ({code})"),
                None => format!("server: {message} ({code})"),
            };
            self.set_flash(text, true);
            return;
        }
        let applied = self.model.apply(message);
        if let Some(gap) = applied.resubscribe {
            let commands = self.subscriptions.resubscribe(gap, &mut self.model);
            self.commands.extend(commands);
        }
        if applied.changed {
            self.dirty = true;
        }
    }

    fn on_rest(&mut self, outcome: RestOutcome) {
        let what = outcome.request.describe();
        match outcome.result {
            Ok(RestAnswer::Job(job)) => {
                let text = match outcome.request {
                    RestRequest::Cancel { .. } if !job.status.is_terminal() => {
                        format!(
                            "cancel requested: job {} stops at its next safe point",
                            short_id(&job.id)
                        )
                    }
                    RestRequest::Cancel { .. } => {
                        format!("job {} is {}", short_id(&job.id), job.status)
                    }
                    _ => format!(
                        "{what}: accepted as job {} ({})",
                        short_id(&job.id),
                        job.status
                    ),
                };
                if matches!(outcome.request, RestRequest::Action { .. }) {
                    self.ui.job = Some(job.id.clone());
                }
                self.model.accept_job(job);
                self.set_flash(text, false);
            }
            Ok(RestAnswer::Task(task)) => {
                let text = format!("task {:?} created ({})", task.title, task.status.as_str());
                self.ui.task = Some(task.id.clone());
                self.model.accept_task(task);
                self.set_flash(text, false);
            }
            Err(error) => {
                let missing_route = match &error {
                    RestError::Server { code, .. } => {
                        code == "route_not_found" || code == "method_not_allowed"
                    }
                    _ => false,
                };
                let text = match &outcome.request {
                    RestRequest::CreateTask { .. } if missing_route => {
                        "this server does not offer tasks yet (404)".to_owned()
                    }
                    _ => format!("{what} failed: {error}"),
                };
                self.set_flash(text, true);
            }
        }
    }
}
