package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// Bounds on what a plugin's output can put in the host's log.
const (
	maxLogLine  = 2048 // bytes of one line; the rest is cut
	maxLogAttrs = 16   // attributes of one structured line
	maxLogValue = 256  // bytes of one attribute's value
	logRate     = 20   // lines a second, on average ...
	logBurst    = 200  // ... and at once
)

// logSink forwards one plugin's output, across its restarts, to the
// host's logger: line by line, each line bounded, the lines rate limited
// (a line over the rate is counted and dropped, and the count reported
// with the next line that passes). A line that go-plugin's plugin-side
// logger wrote (JSON with "@level" and "@message") keeps its level and
// fields; any other line is logged at Info as it is. The slog handler
// quotes what it writes, so a line cannot forge another.
type logSink struct {
	lim     *rate.Limiter
	mu      sync.Mutex
	dropped int
}

func newLogSink() *logSink {
	return &logSink{lim: rate.NewLimiter(logRate, logBurst)}
}

// writer is an io.Writer for one output stream of one plugin process,
// logging to log.
func (s *logSink) writer(log *slog.Logger, stream string) *lineWriter {
	return &lineWriter{sink: s, log: log, stream: stream}
}

// lineWriter splits what it is written into lines for its sink, holding
// at most maxLogLine bytes of an unfinished line.
type lineWriter struct {
	sink   *logSink
	log    *slog.Logger
	stream string

	mu      sync.Mutex
	buf     []byte
	clipped bool
}

var _ io.Writer = (*lineWriter)(nil)

// Write never fails: output that cannot be logged is dropped.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		chunk, rest, eol := bytes.Cut(p, []byte{'\n'})
		if room := maxLogLine - len(w.buf); len(chunk) > room {
			chunk, w.clipped = chunk[:room], true
		}
		w.buf = append(w.buf, chunk...)
		if !eol {
			break
		}
		w.emit()
		p = rest
	}
	return n, nil
}

// flush logs an unfinished last line.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit()
}

// emit logs the buffered line, if any, and empties the buffer; w.mu is
// held.
func (w *lineWriter) emit() {
	line := bytes.TrimRight(w.buf, "\r")
	clipped := w.clipped
	w.buf, w.clipped = w.buf[:0], false
	if len(line) == 0 {
		return
	}
	dropped, ok := w.sink.admit()
	if !ok {
		return
	}
	level, msg, attrs := parseLine(line)
	attrs = append(attrs, slog.String("stream", w.stream))
	if clipped {
		attrs = append(attrs, slog.Bool("clipped", true))
	}
	if dropped > 0 {
		attrs = append(attrs, slog.Int("dropped_before", dropped))
	}
	w.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// admit reports whether one more line may be logged now and, if so, how
// many were dropped since the last one that was.
func (s *logSink) admit() (dropped int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lim.Allow() {
		s.dropped++
		return 0, false
	}
	dropped, s.dropped = s.dropped, 0
	return dropped, true
}

// parseLine reads one line of plugin output: a go-plugin (hclog) JSON
// line keeps its level, message and fields; anything else is an Info
// line as it is.
func parseLine(line []byte) (slog.Level, string, []slog.Attr) {
	var entry map[string]any
	if line[0] != '{' || json.Unmarshal(line, &entry) != nil {
		return slog.LevelInfo, string(line), nil
	}
	msg, ok := entry["@message"].(string)
	if !ok {
		return slog.LevelInfo, string(line), nil
	}
	level := slog.LevelInfo
	if l, ok := entry["@level"].(string); ok {
		switch strings.ToLower(l) {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn", "warning":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
	}
	keys := make([]string, 0, len(entry))
	for k := range entry {
		switch k {
		case "@message", "@level", "@timestamp":
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var attrs []slog.Attr
	for i, k := range keys {
		if i == maxLogAttrs {
			attrs = append(attrs, slog.Int("fields_left_out", len(keys)-i))
			break
		}
		attrs = append(attrs, slog.String(Clip(strings.TrimPrefix(k, "@"), maxLogValue), Clip(fmt.Sprint(entry[k]), maxLogValue)))
	}
	return level, Clip(msg, maxLogLine), attrs
}
