//! Writing records: JSON lines or a short human-readable block, one record
//! at a time, flushed so a reader sees each kill as it happens.

mod text;

use std::{
    fs::OpenOptions,
    io::{self, IsTerminal, Write},
    path::Path,
};

use crate::report::{KillReport, LostReport, OutcomeReport, PressureReport, SigkillReport};

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line (the default when stdout is not a terminal).
    Json,
    /// A short block per kill, for people (the default on a terminal).
    Text,
}

/// Where records go.
pub struct Output {
    format: Format,
    sink: Box<dyn Write>,
}

impl Output {
    /// stdout, or `path` opened for appending. Without an explicit format,
    /// text on a terminal and JSON otherwise.
    pub fn open(path: Option<&Path>, format: Option<Format>) -> io::Result<Output> {
        let (sink, terminal): (Box<dyn Write>, bool) = match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                (Box::new(file), false)
            }
            None => (Box::new(io::stdout()), io::stdout().is_terminal()),
        };
        let format = format.unwrap_or(if terminal { Format::Text } else { Format::Json });
        Ok(Output { format, sink })
    }

    #[cfg(test)]
    pub fn to_writer(format: Format, sink: Box<dyn Write>) -> Output {
        Output { format, sink }
    }

    pub fn kill(&mut self, report: &KillReport) -> io::Result<()> {
        match self.format {
            Format::Json => self.json_line(report)?,
            Format::Text => text::kill(&mut self.sink, report)?,
        }
        self.sink.flush()
    }

    pub fn sigkill(&mut self, report: &SigkillReport) -> io::Result<()> {
        match self.format {
            Format::Json => self.json_line(report)?,
            Format::Text => text::sigkill(&mut self.sink, report)?,
        }
        self.sink.flush()
    }

    pub fn outcome(&mut self, report: &OutcomeReport) -> io::Result<()> {
        match self.format {
            Format::Json => self.json_line(report)?,
            Format::Text => text::outcome(&mut self.sink, report)?,
        }
        self.sink.flush()
    }

    pub fn pressure(&mut self, report: &PressureReport) -> io::Result<()> {
        match self.format {
            Format::Json => self.json_line(report)?,
            Format::Text => text::pressure(&mut self.sink, report)?,
        }
        self.sink.flush()
    }

    pub fn lost(&mut self, report: &LostReport) -> io::Result<()> {
        match self.format {
            Format::Json => self.json_line(report)?,
            Format::Text => text::lost(&mut self.sink, report)?,
        }
        self.sink.flush()
    }

    fn json_line(&mut self, value: &impl serde::Serialize) -> io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
        line.push(b'\n');
        // One write per record, so concurrent appenders never interleave
        // inside a line.
        self.sink.write_all(&line)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc};

    use super::*;

    /// A writer the test can read back, counting flushes.
    #[derive(Clone, Default)]
    struct Shared {
        bytes: Rc<RefCell<Vec<u8>>>,
        flushes: Rc<RefCell<usize>>,
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            *self.flushes.borrow_mut() += 1;
            Ok(())
        }
    }

    #[test]
    fn json_records_are_single_lines_each_flushed() {
        let shared = Shared::default();
        let mut output = Output::to_writer(Format::Json, Box::new(shared.clone()));
        output
            .lost(&LostReport::new("a".into(), 1))
            .expect("writes");
        output
            .lost(&LostReport::new("b\nc".into(), 2))
            .expect("writes");
        let text = String::from_utf8(shared.bytes.borrow().clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
        }
        assert_eq!(*shared.flushes.borrow(), 2);
    }

    #[test]
    fn a_closed_reader_surfaces_as_broken_pipe() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut output = Output::to_writer(Format::Text, Box::new(Closed));
        let error = output
            .lost(&LostReport::new("t".into(), 1))
            .expect_err("fails");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
