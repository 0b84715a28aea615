package trainer

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestLauncher: the launcher is the interpreter line and a zip holding
// the harness, the limits and the script verbatim; equal inputs build
// equal bytes (so equal pins), and any change of script or limits
// changes them.
func TestLauncher(t *testing.T) {
	l := Limits{}.withDefaults()
	a, err := buildLauncher("/usr/bin/python3", l, []byte("print(1)\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := buildLauncher("/usr/bin/python3", l, []byte("print(1)\n"))
	c, _ := buildLauncher("/usr/bin/python3", l, []byte("print(2)\n"))
	l2 := l
	l2.CPUTime += time.Second
	d, _ := buildLauncher("/usr/bin/python3", l2, []byte("print(1)\n"))
	if !bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Fatal("launchers: want equal bytes for equal inputs only")
	}
	line, rest, _ := bytes.Cut(a, []byte("\n"))
	if string(line) != "#!/usr/bin/python3 -I" {
		t.Errorf("first line %q", line)
	}
	zr, err := zip.NewReader(bytes.NewReader(a), int64(len(a)))
	if err != nil {
		t.Fatalf("not a zip: %v (%d bytes after the line)", err, len(rest))
	}
	files := map[string]string{}
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(r)
		r.Close()
		files[f.Name] = buf.String()
	}
	if files["job.py"] != "print(1)\n" || !strings.Contains(files["hearth_launch.py"], `"memory":4294967296`) || !strings.Contains(files["__main__.py"], "RLIMIT_AS") {
		t.Errorf("launcher holds %v", keys(files))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
