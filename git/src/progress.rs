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
        self.done += 1;
        self.total = self.total.max(self.done);
        self.sink.step(self.done, self.total, text);
    }

    /// Counts `count` units of work as done without announcing them (the branches a batched
    /// replay covered along with the one it announced, or branches left blocked).
    pub(crate) fn skip(&mut self, count: u32) {
        self.done += count;
        self.total = self.total.max(self.done);
    }

    /// Grows or shrinks the total once the plan is known (never below the steps done).
    pub(crate) fn set_total(&mut self, total: u32) {
        self.total = total.max(self.done);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn counts_steps_and_never_exceeds_the_total() {
        let seen = Mutex::new(Vec::new());
        let sink = |step: u32, total: u32, text: &str| {
            seen.lock().unwrap().push((step, total, text.to_string()));
        };
        let mut steps = Steps::new(&sink, 2);
        steps.next("fetching");
        steps.set_total(5);
        steps.next("a");
        steps.skip(2);
        steps.next("publishing");
        steps.next("one more than planned");
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen[0], (1, 2, "fetching".to_string()));
        assert_eq!(seen[2], (5, 5, "publishing".to_string()));
        assert_eq!(seen[3], (6, 6, "one more than planned".to_string()));
    }
}
