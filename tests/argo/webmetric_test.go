// Argo Rollouts' own web metric provider runs the metric of deploy/argo/analysis-template.yaml
// against a live `kappactl serve`. The pytest tests/argo/test_argo_webmetric.py starts the
// servers and passes KAPPA_GATE_CASES: "url=PHASE,url=PHASE", the phase each server's gate
// must produce (Successful, Failed or Inconclusive).
package argo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/argoproj/argo-rollouts/metricproviders/webmetric"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	log "github.com/sirupsen/logrus"
	"sigs.k8s.io/yaml"
)

func loadTemplate(t *testing.T) v1alpha1.AnalysisTemplate {
	t.Helper()
	path := filepath.Join("..", "..", "deploy", "argo", "analysis-template.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var template v1alpha1.AnalysisTemplate
	// Strict: a field the AnalysisTemplate type does not know is an error, not ignored.
	if err := yaml.UnmarshalStrict(raw, &template); err != nil {
		t.Fatalf("%s is not an AnalysisTemplate: %v", path, err)
	}
	if template.Kind != "AnalysisTemplate" || len(template.Spec.Metrics) != 1 {
		t.Fatalf("%s: want one AnalysisTemplate metric, got kind %q with %d", path, template.Kind, len(template.Spec.Metrics))
	}
	return template
}

func measure(t *testing.T, metric v1alpha1.Metric, url string) v1alpha1.Measurement {
	t.Helper()
	metric.Provider.Web.URL = url // the template's URL is an argument ({{args.gate-url}})
	client, err := webmetric.NewWebMetricHttpClient(metric)
	if err != nil {
		t.Fatal(err)
	}
	parser, err := webmetric.NewWebMetricJsonParser(metric)
	if err != nil {
		t.Fatal(err)
	}
	provider := webmetric.NewWebMetricProvider(*log.NewEntry(log.New()), client, parser)
	return provider.Run(&v1alpha1.AnalysisRun{}, metric)
}

func TestGateAsArgoWebMetric(t *testing.T) {
	cases := os.Getenv("KAPPA_GATE_CASES")
	if cases == "" {
		t.Skip("KAPPA_GATE_CASES not set: run through tests/argo/test_argo_webmetric.py")
	}
	metric := loadTemplate(t).Spec.Metrics[0]
	for _, item := range strings.Split(cases, ",") {
		url, want, _ := strings.Cut(item, "=")
		m := measure(t, metric, url)
		if string(m.Phase) != want {
			t.Errorf("%s: phase %q (value %q, message %q), want %q", url, m.Phase, m.Value, m.Message, want)
		} else {
			t.Logf("%s: %s (value %s) %s", url, m.Phase, m.Value, m.Message)
		}
	}
}
