package trainer

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestLauncher: the launcher is the interpreter line and a zip holding
// the harness, the limits, the sandbox and the script verbatim; equal
// inputs build equal bytes (so equal pins), and any change of script,
// limits or sandbox changes them.
func TestLauncher(t *testing.T) {
	l := Limits{}.withDefaults(DefaultMaxModelBytes)
	setup := Setup{Args: []byte(`{"dataset":"optdigits"}`), DataDir: "/srv/data"}
	sb, err := pythonSandbox(SandboxOn, "/usr/bin/python3", setup, "/tmp/work", "/dev/shm/x")
	if err != nil {
		t.Fatal(err)
	}
	a, err := buildLauncher("/usr/bin/python3", l, sb, []byte("print(1)\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := buildLauncher("/usr/bin/python3", l, sb, []byte("print(1)\n"))
	c, _ := buildLauncher("/usr/bin/python3", l, sb, []byte("print(2)\n"))
	l2 := l
	l2.CPUTime += time.Second
	d, _ := buildLauncher("/usr/bin/python3", l2, sb, []byte("print(1)\n"))
	off, _ := pythonSandbox(SandboxOff, "/usr/bin/python3", setup, "/tmp/work", "/dev/shm/x")
	e, _ := buildLauncher("/usr/bin/python3", l, off, []byte("print(1)\n"))
	other, _ := pythonSandbox(SandboxOn, "/usr/bin/python3", Setup{Args: []byte(`{"dataset":"other"}`), DataDir: "/srv/data"}, "/tmp/work", "/dev/shm/x")
	f, _ := buildLauncher("/usr/bin/python3", l, other, []byte("print(1)\n"))
	if !bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(a, d) || bytes.Equal(a, e) || bytes.Equal(a, f) {
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
	if files["job.py"] != "print(1)\n" || !strings.Contains(files["hearth_launch.py"], `"memory":4294967296`) || !strings.Contains(files["__main__.py"], "RLIMIT_AS") ||
		!strings.Contains(files["hearth_sandbox.py"], "landlock") {
		t.Errorf("launcher holds %v", keys(files))
	}
	for _, want := range []string{`\"on\":true`, `/srv/data/optdigits`, `/tmp/work`, `/dev/shm/x`, `/etc/ld.so.cache`} {
		if !strings.Contains(files["hearth_launch.py"], want) {
			t.Errorf("hearth_launch.py lacks %s: %s", want, files["hearth_launch.py"])
		}
	}
}

// TestSandboxPolicy: the sandbox allows the job's own dataset folder
// only (not the data folder, nor any folder for arguments that name no
// dataset), the working and shared memory folders for writing, no /etc
// but the loader's cache, and the interpreter's prefix when it is not
// under /usr.
func TestSandboxPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, interp, args, data string
		want, not                []string
	}{
		{"dataset", "/usr/bin/python3", `{"dataset":"optdigits"}`, "/srv/data", []string{"r /srv/data/optdigits", "rwc /w", "rwe /s", "rx /usr", "r /etc/ld.so.cache"}, []string{"r /srv/data", "r /etc", "rx /", "rwc /s"}},
		{"a path for a dataset", "/usr/bin/python3", `{"dataset":"../secrets"}`, "/srv/data", nil, []string{"r /srv/data", "r /srv/secrets", "r /srv"}},
		{"no dataset", "/usr/bin/python3", `{}`, "/srv/data", nil, []string{"r /srv/data"}},
		{"relative data folder", "/usr/bin/python3", `{"dataset":"optdigits"}`, "data", nil, []string{"r data/optdigits"}},
		{"own python", "/opt/py3.11/bin/python3", `{"dataset":"optdigits"}`, "/srv/data", []string{"rx /opt/py3.11"}, []string{"rx /opt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := pythonSandbox(SandboxOn, tc.interp, Setup{Args: []byte(tc.args), DataDir: tc.data}, "/w", "/s")
			if err != nil || !p.On {
				t.Fatalf("pythonSandbox: %+v, %v", p, err)
			}
			have := map[string]bool{}
			for _, r := range p.Rules {
				have[r.Access+" "+r.Path] = true
			}
			for _, w := range tc.want {
				if !have[w] {
					t.Errorf("no rule %q in %v", w, p.Rules)
				}
			}
			for _, n := range tc.not {
				if have[n] {
					t.Errorf("a rule %q in %v", n, p.Rules)
				}
			}
		})
	}
	if _, err := pythonSandbox(SandboxOn, "/usr/bin/python3", Setup{}, "work", "/s"); err == nil {
		t.Error("a relative working folder: want an error")
	}
	if _, err := pythonSandbox(SandboxMode(7), "/usr/bin/python3", Setup{}, "/w", "/s"); err == nil {
		t.Error("an unknown sandbox mode: want an error")
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
