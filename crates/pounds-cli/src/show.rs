//! Printing records for `log dump` and `log follow`: which records, and what was not shown.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use pounds::log::{Filter, Follower, Format, Level, Log, Reader, RecordRef};

use crate::args::FilterArgs;

/// The records `--level` and `--tag` select.
pub(crate) struct Selection {
    /// The levels, as the library's filter (no tag in it).
    levels: Filter,
    /// Any of these tags (as bytes); empty: every tag.
    tags: Vec<String>,
    /// Only records written at or after this time (ns since the epoch).
    since: u64,
    /// Only records written at or before this time (ns since the epoch).
    until: u64,
}

/// How far past `--until` a record's time may be before the reading stops: records from
/// several writers are in id order, their times only roughly so (a writer preempted between
/// taking the time and reserving its block).
pub(crate) const UNTIL_SLACK_NANOS: u64 = 1_000_000_000;

impl Selection {
    /// One level is a threshold (it and the more severe ones); several are exactly those.
    pub(crate) fn of(args: FilterArgs) -> Selection {
        let levels = match args.levels.as_slice() {
            [] => Filter::all(),
            [level] => Filter::all().min_level(*level),
            several => Filter::all().levels(several.iter().copied()),
        };
        Selection {
            levels,
            tags: args.tags,
            since: 0,
            until: u64::MAX,
        }
    }

    /// Every record.
    pub(crate) fn everything() -> Selection {
        Selection::of(FilterArgs {
            levels: Vec::new(),
            tags: Vec::new(),
        })
    }

    /// Only records written from `since` to `until` (inclusive; ns since the epoch).
    pub(crate) fn between(mut self, since: Option<u64>, until: Option<u64>) -> Selection {
        self.since = since.unwrap_or(0);
        self.until = until.unwrap_or(u64::MAX);
        self
    }

    /// Whether every record from `record` on is past `--until` (by more than the slack).
    pub(crate) fn beyond(&self, record: &RecordRef<'_>) -> bool {
        self.until != u64::MAX && record.time > self.until.saturating_add(UNTIL_SLACK_NANOS)
    }

    /// Whether the clock, `now` (ns since the epoch), is past `--until` by more than the
    /// slack: a follower sees no later record it would show.
    pub(crate) fn over_at(&self, now: u64) -> bool {
        self.until != u64::MAX && now > self.until.saturating_add(UNTIL_SLACK_NANOS)
    }

    /// Whether `record` is shown.
    pub(crate) fn accepts(&self, record: &RecordRef<'_>) -> bool {
        (self.since..=self.until).contains(&record.time)
            && self.levels.accepts_bytes(record.level, record.tag)
            && (self.tags.is_empty() || self.tags.iter().any(|tag| tag.as_bytes() == record.tag))
    }
}

/// What records come from: a reader (to the newest record) or a follower (waiting a little at
/// a time, so that the caller can look around between waits).
pub(crate) trait Source {
    /// The next record, or `None` (the end, or for a follower a wait that timed out); an
    /// error when the file was cut short under it.
    fn next_record(&mut self) -> pounds::log::Result<Option<RecordRef<'_>>>;
    /// The position (id) looked at next.
    fn at(&self) -> u64;
    /// Blocks lost so far.
    fn lost_so_far(&self) -> u64;
}

impl Source for Reader {
    fn next_record(&mut self) -> pounds::log::Result<Option<RecordRef<'_>>> {
        self.try_next_ref()
    }
    fn at(&self) -> u64 {
        Reader::position(self)
    }
    fn lost_so_far(&self) -> u64 {
        self.lost()
    }
}

/// How long a follower waits for a record before its caller looks at the output again.
pub(crate) const FOLLOW_WAIT: Duration = Duration::from_millis(100);

impl Source for Follower {
    fn next_record(&mut self) -> pounds::log::Result<Option<RecordRef<'_>>> {
        self.try_next_ref_timeout(FOLLOW_WAIT)
    }
    fn at(&self) -> u64 {
        Follower::position(self)
    }
    fn lost_so_far(&self) -> u64 {
        self.lost()
    }
}

/// Records a source lost before a record: `lost` blocks, within ids `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    /// Blocks lost (one a record, for short records).
    pub(crate) lost: u64,
    /// The first id not read.
    pub(crate) from: u64,
    /// The last id not read.
    pub(crate) to: u64,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Gap { lost, from, to } = self;
        write!(f, "lost {lost} records (ids {from}..{to}) to wrap-around")
    }
}

/// Follows what a source lost, step by step, to say which ids each gap covered.
#[derive(Debug, Clone)]
pub(crate) struct Losses {
    /// Where the next record would be if nothing were lost.
    expected: u64,
    /// Blocks lost so far.
    lost: u64,
}

impl Losses {
    /// For a source that starts at `start`: the id asked for (a source that starts later than
    /// that lost the ids between).
    pub(crate) fn new(start: u64) -> Losses {
        Losses {
            expected: start,
            lost: 0,
        }
    }

    /// Blocks lost so far.
    pub(crate) fn total(&self) -> u64 {
        self.lost
    }

    /// After a step of `source` that returned the record with id `got` (or none): the gap
    /// before it, if the step lost blocks.
    pub(crate) fn after_step(&mut self, source: &impl Source, got: Option<u64>) -> Option<Gap> {
        let lost_now = source.lost_so_far();
        let gap = (lost_now > self.lost).then(|| {
            let from = self.expected;
            let resumed = got.unwrap_or_else(|| source.at());
            Gap {
                lost: lost_now - self.lost,
                from,
                to: resumed.saturating_sub(1).max(from),
            }
        });
        self.lost = self.lost.max(lost_now);
        self.expected = source.at();
        gap
    }
}

/// What one [`Printer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// A record was printed.
    Printed,
    /// The source moved (a record not selected, or blocks lost): step again.
    Moved,
    /// Nothing new: the reader is at the newest record, or the follower's wait timed out.
    Idle,
    /// The last record asked for is past (`-n` on a dump).
    End,
}

/// Prints the selected records of a source, and a report of the records lost before each
/// gap: a line on stderr in text mode, a `{"lost":N,"from":A,"to":B}` object in the JSON
/// stream (ids `A..=B` were not all readable; `N` counts blocks, one per short record).
pub(crate) struct Printer<W: Write> {
    out: W,
    format: Format,
    selection: Selection,
    /// Stop at the first record at or past this id.
    end: Option<u64>,
    /// Colour text lines by level.
    colour: bool,
    /// Print with each record the position after it.
    show_cursor: bool,
    /// Also report what was lost on stderr in JSON (for an export, whose reader may not look
    /// at the lost objects).
    lost_on_stderr: bool,
    /// The current record's line, formatted before it is printed (a lost report goes first).
    line: Vec<u8>,
    /// What the source lost, gap by gap.
    losses: Losses,
    /// Records printed so far.
    printed: u64,
}

impl<W: Write> Printer<W> {
    /// A printer of the records of a source that starts at `start`: the id asked for (a
    /// source that starts later than that lost the ids between).
    pub(crate) fn new(out: W, format: Format, selection: Selection, start: u64) -> Printer<W> {
        Printer {
            out,
            format,
            selection,
            end: None,
            colour: false,
            show_cursor: false,
            lost_on_stderr: false,
            line: Vec::with_capacity(256),
            losses: Losses::new(start),
            printed: 0,
        }
    }

    /// Stops at the first record at or past `end`.
    pub(crate) fn end_at(mut self, end: Option<u64>) -> Printer<W> {
        self.end = end;
        self
    }

    /// Colours text lines by level (JSON stays plain).
    pub(crate) fn coloured(mut self, colour: bool) -> Printer<W> {
        self.colour = colour && matches!(self.format, Format::Text);
        self
    }

    /// Prints with each record the position after it: ` cursor=N` at the end of a text line,
    /// a `"cursor":N` field in JSON.
    pub(crate) fn show_cursor(mut self, show: bool) -> Printer<W> {
        self.show_cursor = show;
        self
    }

    /// Reports what was lost on stderr also in JSON, where it is an object in the stream too.
    pub(crate) fn lost_on_stderr(mut self, also: bool) -> Printer<W> {
        self.lost_on_stderr = also;
        self
    }

    /// Blocks reported lost so far.
    pub(crate) fn lost(&self) -> u64 {
        self.losses.total()
    }

    /// The output, to hand on what was printed into it (a buffer).
    pub(crate) fn output_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The records it shows.
    pub(crate) fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Records printed so far.
    pub(crate) fn printed(&self) -> u64 {
        self.printed
    }

    /// Flushes the output.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Reads one record from `source`; prints it if selected, after the report of what was
    /// lost before it.
    pub(crate) fn step(&mut self, source: &mut impl Source) -> crate::error::Result<Flow> {
        let before = (source.at(), source.lost_so_far());
        self.line.clear();
        let got = match source.next_record()? {
            None => None,
            Some(record) => {
                let id = record.id;
                let past_end =
                    self.end.is_some_and(|end| id >= end) || self.selection.beyond(&record);
                let shown = !past_end && self.selection.accepts(&record);
                if shown {
                    let style = if self.colour {
                        level_style(record.level)
                    } else {
                        Style::new()
                    };
                    write!(self.line, "{}", style.render())?;
                    self.format.write_ref(&record, &mut self.line)?;
                    if style != Style::new() && self.line.last() == Some(&b'\n') {
                        self.line.pop();
                        writeln!(self.line, "{}", style.render_reset())?;
                    }
                }
                Some((id, shown, past_end))
            }
        };
        let lost_now = source.lost_so_far();
        if let Some(gap) = self.losses.after_step(source, got.map(|(id, ..)| id)) {
            self.report_lost(gap)?;
        }
        if self.show_cursor && matches!(got, Some((_, true, false))) {
            self.add_cursor(source.at());
        }
        match got {
            Some((_, _, true)) => Ok(Flow::End),
            Some((_, true, _)) => {
                self.out.write_all(&self.line)?;
                self.printed += 1;
                Ok(Flow::Printed)
            }
            Some(_) => Ok(Flow::Moved),
            None if (source.at(), lost_now) != before => Ok(Flow::Moved),
            None => Ok(Flow::Idle),
        }
    }

    /// Puts `position` into the formatted line: before the closing `}` of a JSON object, at
    /// the end of a text line.
    fn add_cursor(&mut self, position: u64) {
        let newline = self.line.last() == Some(&b'\n');
        if newline {
            self.line.pop();
        }
        let field = match self.format {
            Format::Json if self.line.last() == Some(&b'}') => {
                self.line.pop();
                format!(",\"cursor\":{position}}}")
            }
            _ => format!(" cursor={position}"),
        };
        self.line.extend_from_slice(field.as_bytes());
        if newline {
            self.line.push(b'\n');
        }
    }

    /// Says which records a gap lost: in the JSON stream, or (in text, and with
    /// [`Self::lost_on_stderr`]) on stderr.
    fn report_lost(&mut self, gap: Gap) -> io::Result<()> {
        let Gap { lost, from, to } = gap;
        let json = matches!(self.format, Format::Json);
        if json {
            writeln!(self.out, "{{\"lost\":{lost},\"from\":{from},\"to\":{to}}}")?;
        }
        if !json || self.lost_on_stderr {
            if !json {
                // After what was printed before the gap, not before it.
                self.out.flush()?;
            }
            writeln!(io::stderr(), "pounds: {gap}")?;
        }
        Ok(())
    }
}

/// How a level's lines look on a terminal: errors bold red, warnings bold yellow, info plain,
/// debug and trace dimmed (as journalctl shows priorities).
fn level_style(level: Level) -> Style {
    match level {
        Level::Error => AnsiColor::Red.on_default().bold(),
        Level::Warn => AnsiColor::Yellow.on_default().bold(),
        Level::Info => Style::new(),
        _ => Style::new().dimmed(),
    }
}

/// Where the last `n` records that `selection` accepts start (from `since` or the oldest on):
/// `None` when there are fewer (start where the reading would have), and the position the
/// pass ended at. With `n == 0`, the start is that end.
pub(crate) fn last_start(
    log: &Log,
    since: Option<u64>,
    selection: &Selection,
    n: u64,
) -> (Option<u64>, u64) {
    let mut reader = match since {
        Some(id) => log.reader_from(id),
        None => log.reader(),
    };
    let keep = usize::try_from(n).unwrap_or(usize::MAX);
    let mut ids = VecDeque::with_capacity(keep.min(1 << 16));
    loop {
        let before = (Reader::position(&reader), reader.lost());
        if let Some(record) = reader.next_ref() {
            if keep > 0 && selection.accepts(&record) {
                if ids.len() == keep {
                    ids.pop_front();
                }
                ids.push_back(record.id);
            }
        } else if (Reader::position(&reader), reader.lost()) == before {
            // `next_ref` also returns `None` when writers keep lapping the reader (its work
            // per call is bounded); the end is where it no longer moves.
            break;
        }
    }
    let end = Reader::position(&reader);
    let start = if keep == 0 {
        Some(end)
    } else if ids.len() == keep {
        ids.front().copied()
    } else {
        since
    };
    (start, end)
}

/// Whether standard output is a pipe or socket whose reader went away (`follow | head -1`
/// after `head` exited), found without writing: a zero-length write to a pipe succeeds
/// whatever its reader did, but poll(2) reports an error on a pipe with no reader left (and
/// a hang-up on a socket). Elsewhere than Unix: false (the next record's write finds it).
#[cfg(unix)]
pub(crate) fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => false,
    }
}

/// Whether standard output's reader went away: not known without writing on this platform.
#[cfg(not(unix))]
pub(crate) fn stdout_closed() -> bool {
    false
}
