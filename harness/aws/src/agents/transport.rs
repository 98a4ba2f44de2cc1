//! The agents' transport through the run's bucket: opaque lines in numbered chunk objects.
//! The harness puts each agent's assignment at `runs/<run>/agents/<k>/assignment.json` and may
//! send it more lines later (a tier's targets once the tier is up, a stop) as
//! `runs/<run>/agents/<k>/in/<seq>.jsonl`; the agent puts what it streams as
//! `runs/<run>/agents/<k>/<seq>.jsonl` ([`AgentSink`]); each side reads the other's chunks back
//! in order ([`LineReader`]). S3 has no append, so a chunk per flush; its reads are strongly
//! consistent, so a reader that asks for the next sequence number sees a chunk as soon as its
//! put returned.

use std::sync::Arc;

use crate::api::S3Api;
use crate::error::ApiError;

/// The key prefix of everything of agent `k` (ends with `/`).
pub fn agent_prefix(run: &str, k: u32) -> String {
    format!("{}{k}/", agents_prefix(run))
}

/// The key prefix of every agent of the run, which the agents' task role may read and write.
pub fn agents_prefix(run: &str) -> String {
    format!("runs/{run}/agents/")
}

/// The isobench binary the agents run: outside the prefix they may write, fetched by a
/// presigned URL.
pub fn binary_key(run: &str) -> String {
    format!("runs/{run}/bin/isobench")
}

pub fn assignment_key(run: &str, k: u32) -> String {
    format!("{}assignment.json", agent_prefix(run, k))
}

/// Which way a stream of chunks goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Agent to harness: what the agent streams.
    Out,
    /// Harness to agent: lines sent after the assignment.
    In,
}

/// Chunk `seq` of agent `k` in direction `dir`; zero-padded so a listing is in order too.
pub fn chunk_key(run: &str, k: u32, dir: Direction, seq: u64) -> String {
    let sub = match dir {
        Direction::Out => "",
        Direction::In => "in/",
    };
    format!("{}{sub}{seq:010}.jsonl", agent_prefix(run, k))
}

/// Puts lines as the next numbered chunks of one stream.
pub struct ChunkWriter {
    s3: Arc<dyn S3Api>,
    bucket: String,
    run: String,
    index: u32,
    dir: Direction,
    next: u64,
}

impl ChunkWriter {
    pub fn new(s3: Arc<dyn S3Api>, bucket: &str, run: &str, index: u32, dir: Direction) -> ChunkWriter {
        ChunkWriter { s3, bucket: bucket.to_string(), run: run.to_string(), index, dir, next: 0 }
    }

    /// Puts `lines` (complete lines; a missing final newline is added) as the next chunk.
    /// Nothing is put for no bytes.
    pub async fn put(&mut self, lines: &[u8]) -> Result<(), ApiError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut body = lines.to_vec();
        if body.last() != Some(&b'\n') {
            body.push(b'\n');
        }
        let key = chunk_key(&self.run, self.index, self.dir, self.next);
        self.s3.put_object(&self.bucket, &key, body).await?;
        self.next += 1;
        Ok(())
    }
}

/// The agent's side: reads its assignment and what the harness sends later, puts its output.
pub struct AgentSink {
    s3: Arc<dyn S3Api>,
    bucket: String,
    run: String,
    index: u32,
    out: ChunkWriter,
    inbox: LineReader,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentEnvError {
    #[error("`{0}` is not set (an agent task's definition sets it)")]
    Missing(&'static str),
    #[error("`{0}` is not an agent index")]
    Index(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl AgentSink {
    pub fn new(s3: Arc<dyn S3Api>, bucket: &str, run: &str, index: u32) -> AgentSink {
        AgentSink {
            out: ChunkWriter::new(s3.clone(), bucket, run, index, Direction::Out),
            inbox: LineReader::new(s3.clone(), bucket, run, index, Direction::In),
            s3,
            bucket: bucket.to_string(),
            run: run.to_string(),
            index,
        }
    }

    /// The sink of an agent task, from the environment its task definition sets (bucket, run,
    /// index) and the SDK's default chain (in a task: the task role).
    pub async fn from_env() -> Result<AgentSink, AgentEnvError> {
        let var = |name: &'static str| std::env::var(name).map_err(|_| AgentEnvError::Missing(name));
        let (bucket, run, index) = (var(super::ENV_BUCKET)?, var(super::ENV_RUN)?, var(super::ENV_INDEX)?);
        let index = index.parse().map_err(|_| AgentEnvError::Index(index))?;
        let sdk = crate::config::load(&crate::config::AwsOptions::default()).await?;
        Ok(AgentSink::new(crate::config::apis(&sdk).s3, &bucket, &run, index))
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    /// The assignment the harness put for this agent.
    pub async fn assignment(&self) -> Result<Vec<u8>, ApiError> {
        let key = assignment_key(&self.run, self.index);
        self.s3.get_object(&self.bucket, &key).await?.ok_or_else(|| {
            ApiError::new("GetObject", "NoSuchKey", format!("no assignment at s3://{}/{key}", self.bucket))
        })
    }

    /// Puts `lines` as the next chunk of the agent's output.
    pub async fn put(&mut self, lines: &[u8]) -> Result<(), ApiError> {
        self.out.put(lines).await
    }

    /// The lines the harness sent since the last call, in order.
    pub async fn received(&mut self) -> Result<Vec<Vec<u8>>, ApiError> {
        self.inbox.read_lines().await
    }
}

/// One stream's new complete lines since the last call, in order.
pub struct LineReader {
    s3: Arc<dyn S3Api>,
    bucket: String,
    run: String,
    index: u32,
    dir: Direction,
    next: u64,
    /// Bytes after the last newline seen (a chunk cut mid-line by a dying agent).
    partial: Vec<u8>,
}

impl LineReader {
    pub fn new(s3: Arc<dyn S3Api>, bucket: &str, run: &str, index: u32, dir: Direction) -> LineReader {
        let (bucket, run) = (bucket.to_string(), run.to_string());
        LineReader { s3, bucket, run, index, dir, next: 0, partial: Vec::new() }
    }

    /// Every complete line in the chunks put since the last call, without its newline (empty
    /// lines are dropped).
    pub async fn read_lines(&mut self) -> Result<Vec<Vec<u8>>, ApiError> {
        loop {
            let key = chunk_key(&self.run, self.index, self.dir, self.next);
            let Some(chunk) = self.s3.get_object(&self.bucket, &key).await? else { break };
            self.partial.extend_from_slice(&chunk);
            self.next += 1;
        }
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else { return Ok(Vec::new()) };
        let rest = self.partial.split_off(end + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        Ok(done.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect())
    }

    /// Chunks read so far.
    pub fn chunks_read(&self) -> u64 {
        self.next
    }
}
