//! smux v1: many TCP connections over the one byte stream of a port-forwarding session.
//!
//! With a client version of at least 1.1.70 the agent runs an smux v1 session inside the
//! data channel's Output payloads, so one `jump forward` can carry many local
//! connections. The format is an 8-byte header (version 1, command SYN 0 / FIN 1 / PSH 2
//! / NOP 3, length u16 LE, stream id u32 LE) and up to 32 KiB of data; the client opens
//! odd stream ids from 3. We write it ourselves for the same reasons as the rest of
//! [`super`], and because v1 is tiny.
//!
//! v1 has no per-stream flow control, so the only lossless answer to a slow local reader
//! is backpressure: each stream has a bounded queue, and when it is full the demultiplexer
//! stops reading the transport. Over a [`Channel`](super::channel::Channel) that means it
//! stops taking events, which withholds acknowledgements, which makes the agent slow down.
//! All streams pause together (head-of-line blocking, inherent to v1), but no byte is lost.
//! A stream that is closed or dropped no longer has a queue: its data is discarded and it
//! cannot stall the others, and a FIN affects only its own stream.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::channel::{flag, Channel, Event};
use super::frame::PayloadType;

const VERSION: u8 = 1;
const SYN: u8 = 0;
const FIN: u8 = 1;
const PSH: u8 = 2;
const NOP: u8 = 3;
const HEADER: usize = 8;
/// Largest data per frame.
pub const MAX_FRAME: usize = 32 * 1024;
/// Frames queued for the transport before writers wait.
const WRITE_QUEUE: usize = 64;

/// A multiplexed session; open streams with [`Mux::open`].
pub struct Mux {
    state: Arc<Mutex<State>>,
    frames: mpsc::Sender<Vec<u8>>,
    queue: usize,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    streams: HashMap<u32, mpsc::Sender<Vec<u8>>>,
    next_id: u32,
    /// The transport ended; no new streams.
    ended: bool,
}

/// One stream: read with [`MuxStream::read`], write through [`MuxStream::writer`].
/// Dropping it sends FIN (once) and discards anything the peer still sends.
pub struct MuxStream {
    id: u32,
    incoming: mpsc::Receiver<Vec<u8>>,
    writer: StreamWriter,
    state: Arc<Mutex<State>>,
}

/// The writing half of a stream; clone it into the task that copies local input.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    frames: mpsc::Sender<Vec<u8>>,
    fin_sent: Arc<AtomicBool>,
}

fn header(cmd: u8, len: usize, id: u32) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + len);
    frame.push(VERSION);
    frame.push(cmd);
    // Callers never exceed MAX_FRAME, which fits u16.
    frame.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_le_bytes());
    frame.extend_from_slice(&id.to_le_bytes());
    frame
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the multiplexed session has ended",
    )
}

impl Mux {
    /// Runs smux over a byte stream; `queue` bounds each stream's incoming frames.
    pub fn new<R, W>(reader: R, writer: W, queue: usize) -> Mux
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(Mutex::new(State {
            next_id: 3,
            ..State::default()
        }));
        let (frames, frame_rx) = mpsc::channel(WRITE_QUEUE);
        Mux {
            reader: tokio::spawn(demultiplex(reader, state.clone())),
            writer: tokio::spawn(write_frames(writer, frame_rx)),
            state,
            frames,
            queue: queue.max(1),
        }
    }

    /// Opens a new stream (sends SYN).
    pub async fn open(&self) -> io::Result<MuxStream> {
        let (tx, incoming) = mpsc::channel(self.queue);
        let id = {
            let mut state = self.state.lock().map_err(|_| broken())?;
            if state.ended {
                return Err(broken());
            }
            let id = state.next_id;
            state.next_id = id
                .checked_add(2)
                .ok_or_else(|| io::Error::other("stream ids exhausted"))?;
            state.streams.insert(id, tx);
            id
        };
        self.frames
            .send(header(SYN, 0, id))
            .await
            .map_err(|_| broken())?;
        Ok(MuxStream {
            id,
            incoming,
            writer: StreamWriter {
                id,
                frames: self.frames.clone(),
                fin_sent: Arc::new(AtomicBool::new(false)),
            },
            state: self.state.clone(),
        })
    }

    /// True once the transport has ended (EOF, error, or a protocol violation).
    pub fn is_ended(&self) -> bool {
        self.state.lock().map_or(true, |s| s.ended)
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl MuxStream {
    #[cfg(test)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The next chunk from the peer; `None` after its FIN or when the session ended.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        self.incoming.recv().await
    }

    pub fn writer(&self) -> StreamWriter {
        self.writer.clone()
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock() {
            state.streams.remove(&self.id);
        }
        self.writer.fin_now();
    }
}

impl StreamWriter {
    /// Sends `data` as PSH frames of at most [`MAX_FRAME`] bytes.
    pub async fn write(&self, data: &[u8]) -> io::Result<()> {
        if self.fin_sent.load(Ordering::Acquire) {
            return Err(broken());
        }
        for chunk in data.chunks(MAX_FRAME) {
            let mut frame = header(PSH, chunk.len(), self.id);
            frame.extend_from_slice(chunk);
            self.frames.send(frame).await.map_err(|_| broken())?;
        }
        Ok(())
    }

    /// Sends everything `reader` yields until its end (or a read error, or the stream
    /// breaking), then ends the stream (FIN).
    pub async fn copy_from<R: AsyncRead + Unpin>(&self, reader: &mut R) {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if self.write(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.finish().await;
    }

    /// Ends the stream (FIN), once; later writes fail.
    pub async fn finish(&self) {
        if !self.fin_sent.swap(true, Ordering::AcqRel) {
            let _ = self.frames.send(header(FIN, 0, self.id)).await;
        }
    }

    /// FIN from a synchronous context (drop): queued behind earlier frames.
    fn fin_now(&self) {
        if self.fin_sent.swap(true, Ordering::AcqRel) {
            return;
        }
        let fin = header(FIN, 0, self.id);
        if let Err(mpsc::error::TrySendError::Full(fin)) = self.frames.try_send(fin) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let frames = self.frames.clone();
                runtime.spawn(async move {
                    let _ = frames.send(fin).await;
                });
            }
        }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut writer: W, mut frames: mpsc::Receiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if let Err(e) = async {
            writer.write_all(&frame).await?;
            writer.flush().await
        }
        .await
        {
            tracing::debug!(error = %e, "smux transport write failed");
            return;
        }
    }
}

/// Reads frames and routes them to the streams' queues, waiting when a queue is full.
async fn demultiplex<R: AsyncRead + Unpin>(mut reader: R, state: Arc<Mutex<State>>) {
    if let Err(e) = route(&mut reader, &state).await {
        tracing::debug!(error = %e, "smux session ended");
    }
    if let Ok(mut state) = state.lock() {
        state.ended = true;
        // Dropping the queues ends every stream's reads.
        state.streams.clear();
    }
}

async fn route<R: AsyncRead + Unpin>(reader: &mut R, state: &Mutex<State>) -> io::Result<()> {
    let mut head = [0u8; HEADER];
    loop {
        reader.read_exact(&mut head).await?;
        let [version, cmd, l0, l1, i0, i1, i2, i3] = head;
        if version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("smux version {version}"),
            ));
        }
        let mut data = vec![0; usize::from(u16::from_le_bytes([l0, l1]))];
        reader.read_exact(&mut data).await?;
        let id = u32::from_le_bytes([i0, i1, i2, i3]);
        let stream =
            |state: &Mutex<State>| state.lock().ok().and_then(|s| s.streams.get(&id).cloned());
        match cmd {
            PSH => {
                let Some(queue) = stream(state) else {
                    tracing::debug!(id, "discarding data for a closed stream");
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                // The backpressure point: a full queue pauses the whole transport.
                if queue.send(data).await.is_err() {
                    if let Ok(mut state) = state.lock() {
                        state.streams.remove(&id);
                    }
                }
            }
            FIN => {
                if let Ok(mut state) = state.lock() {
                    state.streams.remove(&id);
                }
            }
            // We only open streams; the agent never should.
            SYN => tracing::debug!(id, "ignoring a stream opened by the agent"),
            NOP => {}
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("smux command {other}"),
                ))
            }
        }
    }
}

/// Runs a [`Mux`] over a channel's Output byte stream. The returned task ends with the
/// event that ended the session (`Closed` or `Failed`). Output waits in a pipe of
/// `pipe_bytes`; when the pipe is full the pump stops taking events, which withholds
/// acknowledgements.
pub fn over_channel(
    mut channel: Channel,
    queue: usize,
    pipe_bytes: usize,
) -> (Mux, JoinHandle<Option<Event>>) {
    let (local, remote) = tokio::io::duplex(pipe_bytes.max(MAX_FRAME));
    let (mut remote_read, mut remote_write) = tokio::io::split(remote);
    let sender = channel.sender();
    let upload = tokio::spawn(async move {
        let mut buf = vec![0; MAX_FRAME + HEADER];
        loop {
            match remote_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if sender.send(PayloadType::Output, &buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let pump = tokio::spawn(async move {
        let end = loop {
            match channel.recv().await {
                Some(Event::Output(bytes)) => {
                    if remote_write.write_all(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(event @ (Event::Closed(_) | Event::Failed(_))) => break Some(event),
                Some(Event::Flag(flag::CONNECT_TO_PORT_ERROR)) => {
                    tracing::warn!("the jumphost could not connect to the forward target")
                }
                Some(other) => tracing::debug!(?other, "port session event"),
                None => break None,
            }
        };
        upload.abort();
        channel.close().await;
        end
    });
    let (reader, writer) = tokio::io::split(local);
    (Mux::new(reader, writer, queue), pump)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{duplex, split, DuplexStream, ReadHalf, WriteHalf};
    use tokio::time::timeout;

    use super::*;

    /// The agent's end of an in-memory pipe.
    struct Peer {
        read: ReadHalf<DuplexStream>,
        write: WriteHalf<DuplexStream>,
    }

    impl Peer {
        async fn frame(&mut self) -> (u8, u32, Vec<u8>) {
            let mut head = [0u8; HEADER];
            timeout(Duration::from_secs(2), self.read.read_exact(&mut head))
                .await
                .expect("a frame in time")
                .unwrap();
            assert_eq!(head[0], VERSION);
            let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
            let mut data = vec![0; len];
            self.read.read_exact(&mut data).await.unwrap();
            (
                head[1],
                u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
                data,
            )
        }

        async fn send(&mut self, cmd: u8, id: u32, data: &[u8]) {
            let mut frame = header(cmd, data.len(), id);
            frame.extend_from_slice(data);
            self.write.write_all(&frame).await.unwrap();
        }
    }

    fn mux(queue: usize) -> (Mux, Peer) {
        let (ours, theirs) = duplex(256 * 1024);
        let (read, write) = split(ours);
        let (peer_read, peer_write) = split(theirs);
        (
            Mux::new(read, write, queue),
            Peer {
                read: peer_read,
                write: peer_write,
            },
        )
    }

    #[test]
    fn header_layout() {
        assert_eq!(
            header(PSH, 0x0102, 0x0a0b0c0d),
            [1, 2, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a]
        );
    }

    #[tokio::test]
    async fn opens_odd_streams_and_splits_large_writes() {
        let (mux, mut peer) = mux(8);
        let a = mux.open().await.unwrap();
        let b = mux.open().await.unwrap();
        assert_eq!((a.id(), b.id()), (3, 5));
        assert_eq!(peer.frame().await, (SYN, 3, vec![]));
        assert_eq!(peer.frame().await, (SYN, 5, vec![]));
        a.writer().write(&vec![9; MAX_FRAME + 10]).await.unwrap();
        let (cmd, id, first) = peer.frame().await;
        assert_eq!((cmd, id, first.len()), (PSH, 3, MAX_FRAME));
        assert_eq!(peer.frame().await, (PSH, 3, vec![9; 10]));
        drop(a);
        assert_eq!(peer.frame().await, (FIN, 3, vec![]));
    }

    #[tokio::test]
    async fn demultiplexes_and_a_fin_ends_only_its_stream() {
        let (mux, mut peer) = mux(8);
        let mut a = mux.open().await.unwrap();
        let mut b = mux.open().await.unwrap();
        peer.send(PSH, 5, b"to b").await;
        peer.send(PSH, 3, b"to a").await;
        peer.send(FIN, 3, b"").await;
        peer.send(NOP, 0, b"").await;
        peer.send(PSH, 5, b"more b").await;
        assert_eq!(a.read().await.unwrap(), b"to a");
        assert_eq!(a.read().await, None);
        assert_eq!(b.read().await.unwrap(), b"to b");
        assert_eq!(b.read().await.unwrap(), b"more b");
        b.writer().write(b"still fine").await.unwrap();
        // Data for a stream nobody holds any more is discarded without stalling others.
        drop(a);
        peer.send(PSH, 3, b"late").await;
        peer.send(PSH, 5, b"after").await;
        assert_eq!(b.read().await.unwrap(), b"after");
    }

    /// A slow reader on one stream pauses the transport instead of losing data.
    #[tokio::test]
    async fn slow_reader_loses_nothing() {
        let (mux, mut peer) = mux(2);
        let mut slow = mux.open().await.unwrap();
        let total = 2 * 1024 * 1024;
        let writer = tokio::spawn(async move {
            for i in 0..total / 1024 {
                peer.send(PSH, 3, &[i as u8; 1024]).await;
            }
            peer
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The queue holds 2 frames and the pipe 256 KiB: the writer must be blocked.
        assert!(!writer.is_finished());
        let mut received = Vec::new();
        while received.len() < total {
            let chunk = slow.read().await.unwrap();
            received.extend_from_slice(&chunk);
            if received.len() % (256 * 1024) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for (i, chunk) in received.chunks(1024).enumerate() {
            assert!(chunk.iter().all(|b| *b == i as u8), "chunk {i} corrupted");
        }
        timeout(Duration::from_secs(1), writer)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn transport_end_ends_every_stream() {
        let (mux, peer) = mux(8);
        let mut a = mux.open().await.unwrap();
        drop(peer);
        assert_eq!(
            timeout(Duration::from_secs(1), a.read()).await.unwrap(),
            None
        );
        assert!(mux.is_ended());
        assert!(mux.open().await.is_err());
    }

    #[tokio::test]
    async fn garbage_ends_the_session() {
        let (mux, mut peer) = mux(8);
        let mut a = mux.open().await.unwrap();
        peer.write.write_all(&[7; HEADER]).await.unwrap();
        assert_eq!(
            timeout(Duration::from_secs(1), a.read()).await.unwrap(),
            None
        );
    }
}
