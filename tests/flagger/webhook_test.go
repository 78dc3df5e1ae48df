// Flagger's own webhook client (pkg/controller.CallWebhook, what the Flagger controller runs
// for a Canary's analysis.webhooks) calls the gate hooks of deploy/flagger/canary.yaml on a
// live `kappactl serve`. tests/flagger/test_flagger_webhooks.py starts the server and passes
// KAPPA_GATE_URL (the server's base URL) and KAPPA_HOOKS_WANT: "type=ok|refused,...": which
// hook types must succeed (Flagger: the status is 200-202) for the gate's current verdict.
package flagger

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	flaggerv1 "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"github.com/fluxcd/flagger/pkg/controller"
	"sigs.k8s.io/yaml"
)

func TestGateHooksWithFlaggersClient(t *testing.T) {
	base, want := os.Getenv("KAPPA_GATE_URL"), os.Getenv("KAPPA_HOOKS_WANT")
	if base == "" || want == "" {
		t.Skip("KAPPA_GATE_URL / KAPPA_HOOKS_WANT not set: run through tests/flagger/test_flagger_webhooks.py")
	}
	path := filepath.Join("..", "..", "deploy", "flagger", "canary.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var canary flaggerv1.Canary
	if err := yaml.UnmarshalStrict(raw, &canary); err != nil {
		t.Fatalf("%s is not a Canary: %v", path, err)
	}
	expected := map[string]string{}
	for _, item := range strings.Split(want, ",") {
		hook, outcome, _ := strings.Cut(item, "=")
		expected[hook] = outcome
	}
	for _, hook := range canary.GetAnalysis().Webhooks {
		// The snippet's in-cluster service name, pointed at the live server instead.
		hook.URL = base + hook.URL[strings.Index(hook.URL, "/v1/migration/gate"):]
		err := controller.CallWebhook(canary, flaggerv1.CanaryPhaseProgressing, hook)
		got := "ok"
		if err != nil {
			got = "refused"
		}
		if got != expected[string(hook.Type)] {
			t.Errorf("%s hook %s: %s (%v), want %s", hook.Type, hook.URL, got, err, expected[string(hook.Type)])
		} else {
			t.Logf("%s hook: %s", hook.Type, got)
		}
	}
}
