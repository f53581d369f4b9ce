//! Progress reporting from inside an operation, so the server can show a live "step 3 of 12:
//! restacking stack-03" line without the engine knowing about jobs or databases.

/// Receives an operation's steps as they start. Called from the operation's task; keep it
/// cheap (store the latest value, send it on a channel).
pub trait Progress: Send + Sync {
    /// Step `step` of `total` (1-based) is starting; `text` says what it does.
    fn step(&self, step: u32, total: u32, text: &str);
}

/// A [`Progress`] that discards everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _step: u32, _total: u32, _text: &str) {}
}

impl<F> Progress for F
where
    F: Fn(u32, u32, &str) + Send + Sync,
{
    fn step(&self, step: u32, total: u32, text: &str) {
        self(step, total, text)
    }
}

/// Numbers steps for an operation whose total grows as it plans (e.g. one step per branch
/// once the branches to restack are known).
pub(crate) struct Steps<'a> {
    sink: &'a dyn Progress,
    done: u32,
    total: u32,
}

impl<'a> Steps<'a> {
    pub(crate) fn new(sink: &'a dyn Progress, total: u32) -> Steps<'a> {
        Steps {
            sink,
            done: 0,
            total,
        }
    }

    /// Announces the next step.
    pub(crate) fn next(&mut self, text: &str) {
        self.advance(1, text);
    }

    /// Announces a step that covers `count` units of work at once (a batched replay).
    pub(crate) fn advance(&mut self, count: u32, text: &str) {
        self.done += count.max(1);
        self.total = self.total.max(self.done);
        self.sink.step(self.done, self.total, text);
    }

    /// Grows or shrinks the total once the plan is known (never below the steps done).
    pub(crate) fn set_total(&mut self, total: u32) {
        self.total = total.max(self.done);
    }
}
