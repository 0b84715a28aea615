package attest_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/hearthfl/hearth/plugins/attest"
)

// TestHardwareSNPWithoutDevice pins the error a host without SEV-SNP
// hardware sees (these machines have none). On an SEV-SNP guest it
// collects a real report instead.
func TestHardwareSNPWithoutDevice(t *testing.T) {
	hw, err := attest.HardwareSNP()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "no SEV-SNP guest device: ") {
			t.Errorf("HardwareSNP error %q does not say there is no device", err)
		}
		return
	}
	t.Log("an SEV-SNP guest device is present: collecting")
	report, _, err := hw.Collect(context.Background(), [64]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if len(report) != abi.ReportSize {
		t.Errorf("report is %d bytes", len(report))
	}
	if hw.Simulated() || hw.Name() != attest.HardwareName {
		t.Error("hardware labelled as simulated")
	}
}

func TestSimulatorCollects(t *testing.T) {
	sim, err := attest.SimulatedSNP(attest.SimulatedSNPOptions{Build: 7, VMPL: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !sim.Simulated() || sim.Name() != "simulated (go-sev-guest test device)" {
		t.Errorf("labels: %q, %v", sim.Name(), sim.Simulated())
	}
	var rd [64]byte
	copy(rd[:], "the site's binding")
	report, certs, err := sim.Collect(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(report) != abi.ReportSize || len(certs) == 0 {
		t.Fatalf("report %d bytes, certs %d bytes", len(report), len(certs))
	}
	rep, err := abi.ReportToProto(report)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rep.GetReportData(), rd[:]) || rep.GetVmpl() != 1 || rep.GetCurrentBuild() != 7 {
		t.Errorf("report: data %x vmpl %d build %d", rep.GetReportData()[:8], rep.GetVmpl(), rep.GetCurrentBuild())
	}
	policy, err := abi.ParseSnpPolicy(rep.GetPolicy())
	if err != nil || policy.Debug {
		t.Errorf("policy %+v, %v: want debug off by default", policy, err)
	}
	table := new(abi.CertTable)
	if err := table.Unmarshal(certs); err != nil {
		t.Fatal(err)
	}
	if len(table.Proto().GetVcekCert()) == 0 {
		t.Error("no VCEK certificate in the table")
	}
	if c := sim.Claims(); c.Product != "Milan" || c.Now.IsZero() {
		t.Errorf("Claims() = %+v, want defaults filled in", c)
	}
}

func TestSimulatorRefusesBadClaims(t *testing.T) {
	tests := []struct {
		name string
		opts attest.SimulatedSNPOptions
		want string
	}{
		{"unknown product", attest.SimulatedSNPOptions{Product: "Naples"}, "product"},
		{"VMPL above 3", attest.SimulatedSNPOptions{VMPL: 4}, "VMPL"},
		{"TCB part out of range", attest.SimulatedSNPOptions{TCB: attest.SimulatedTCB{SNP: 200}}, "SnpSpl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := attest.SimulatedSNP(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SimulatedSNP = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestCollectHonoursContext(t *testing.T) {
	sim, err := attest.SimulatedSNP(attest.SimulatedSNPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := sim.Collect(ctx, [64]byte{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Collect on a cancelled context = %v", err)
	}
}
