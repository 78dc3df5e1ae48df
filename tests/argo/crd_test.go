// The manifests of deploy/ against the CRDs of the releases they target (Argo Rollouts'
// AnalysisTemplate, Flagger's Canary), with kube-openapi's schema validator (the one the
// Kubernetes API server runs for custom resources) and a strict walk for fields the schema
// does not declare (the API server would prune them silently, so a typo would be lost).
// tests/deploy/test_deploy_crds.py passes KAPPA_CRD_CASES: "manifest=crd,manifest=crd".
package argo

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

type object = map[string]interface{}

func readYAML(t *testing.T, path string) object {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out object
	if err := yaml.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func get(o object, keys ...string) interface{} {
	var cur interface{} = o
	for _, k := range keys {
		m, ok := cur.(object)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// crdSchema is the openAPIV3Schema of the CRD version the manifest's apiVersion names.
func crdSchema(t *testing.T, crd, manifest object) object {
	t.Helper()
	group, version, _ := strings.Cut(fmt.Sprint(manifest["apiVersion"]), "/")
	if get(crd, "spec", "group") != group || get(crd, "spec", "names", "kind") != manifest["kind"] {
		t.Fatalf("the CRD is %v %v, the manifest %v %v", get(crd, "spec", "group"), get(crd, "spec", "names", "kind"), group, manifest["kind"])
	}
	versions, _ := get(crd, "spec", "versions").([]interface{})
	for _, v := range versions {
		if get(v.(object), "name") == version {
			if served := get(v.(object), "served"); served != true {
				t.Fatalf("%s/%s is not served by the CRD", group, version)
			}
			return get(v.(object), "schema", "openAPIV3Schema").(object)
		}
	}
	t.Fatalf("the CRD has no version %s", version)
	return nil
}

// undeclared lists the fields of value that schema neither declares nor lets through.
func undeclared(value interface{}, schema object, path string) []string {
	if schema["x-kubernetes-preserve-unknown-fields"] == true {
		return nil
	}
	var out []string
	switch v := value.(type) {
	case object:
		props, _ := schema["properties"].(object)
		for key, child := range v {
			if path == "" && key == "metadata" {
				continue // ObjectMeta: the API server's own, not the CRD's
			}
			if p, ok := props[key].(object); ok {
				out = append(out, undeclared(child, p, path+"."+key)...)
			} else if a, ok := schema["additionalProperties"].(object); ok {
				out = append(out, undeclared(child, a, path+"."+key)...)
			} else if schema["additionalProperties"] != true {
				out = append(out, path+"."+key)
			}
		}
	case []interface{}:
		if items, ok := schema["items"].(object); ok {
			for i, child := range v {
				out = append(out, undeclared(child, items, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestDeployManifestsMatchTheirCRDs(t *testing.T) {
	cases := os.Getenv("KAPPA_CRD_CASES")
	if cases == "" {
		t.Skip("KAPPA_CRD_CASES not set: run through tests/deploy/test_deploy_crds.py")
	}
	for _, item := range strings.Split(cases, ",") {
		manifestPath, crdPath, _ := strings.Cut(item, "=")
		manifest := readYAML(t, manifestPath)
		raw, _ := json.Marshal(crdSchema(t, readYAML(t, crdPath), manifest))
		var schema spec.Schema
		if err := json.Unmarshal(raw, &schema); err != nil {
			t.Fatalf("%s: the schema does not load: %v", crdPath, err)
		}
		result := validate.NewSchemaValidator(&schema, nil, "", strfmt.Default).Validate(manifest)
		for _, err := range result.Errors {
			t.Errorf("%s: %v", manifestPath, err)
		}
		var s object
		_ = json.Unmarshal(raw, &s)
		for _, field := range undeclared(manifest, s, "") {
			t.Errorf("%s: %s is not a field of %v", manifestPath, field, manifest["kind"])
		}
		if result.IsValid() {
			t.Logf("%s: valid %v", manifestPath, manifest["kind"])
		}
	}
}
