package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// natsLogger routes nats-server's log lines into slog and turns the lines
// that report a permission violation into Refusals.
type natsLogger struct {
	log    *slog.Logger
	report func(Refusal)
}

func (l natsLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}
func (l natsLogger) Tracef(format string, v ...any) { l.Debugf(format, v...) }

func (l natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	if strings.Contains(msg, "Violation") {
		l.report(Refusal{Listener: "hub", Peer: connLabel(msg), Err: fmt.Errorf("%w: %s", ErrPermission, msg)})
	}
}

// connLabel extracts the quoted connection name nats-server puts in front of
// a client's log line ("127.0.0.1:5 - lid:3 - \"site-1\" - ..."), if any.
func connLabel(msg string) string {
	_, rest, ok := strings.Cut(msg, " - \"")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "\"")
	return name
}
