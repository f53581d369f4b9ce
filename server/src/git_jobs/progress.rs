//! Bridges the git engine's progress steps to the job's progress reports.

use crate::engine::JobContext;

pub struct JobProgress<'a> {
    ctx: &'a JobContext,
}

impl<'a> JobProgress<'a> {
    pub fn new(ctx: &'a JobContext) -> JobProgress<'a> {
        JobProgress { ctx }
    }
}

impl gantry_git::Progress for JobProgress<'_> {
    fn step(&self, step: u32, total: u32, text: &str) {
        self.ctx.progress(step, total, text);
    }
}
