// Command testenv-apiserver is upstream's apiextensions-apiserver (a real
// Kubernetes API server that serves only CustomResourceDefinitions and custom
// resources) with the three changes kubectl and kube-rs need to talk to it:
//
//   - an OpenAPI v2 document at /openapi/v2, configured exactly as upstream's
//     pkg/cmd/server/testing/testserver.go does (the stock command configures
//     only v3, and kubectl's client-side validation of custom resources reads
//     v2);
//   - root discovery at /apis, which upstream switches off in Complete()
//     because kube-apiserver's aggregator normally serves it;
//   - the legacy (unaggregated) /apis group list kept in step with the CRDs,
//     because upstream's discovery controller feeds only the aggregated list
//     and the per-group handlers.
//
// Everything else (flags, storage, admission, CEL, server-side apply) is
// upstream code, built from Debian's golang-k8s-apiextensions-apiserver-dev by
// tests/testenv/testenv.sh.
package main

import (
	"context"
	"os"
	"sort"
	"sync"

	"github.com/spf13/cobra"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	listers "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/cli"
	"k8s.io/klog/v2"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)

	// Same command as upstream's pkg/cmd/server.NewServerCommand; only run() differs.
	cmd := &cobra.Command{
		Use:   "testenv-apiserver",
		Short: "apiextensions-apiserver with root discovery and OpenAPI v2, for tests",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return run(c.Context(), o)
		},
	}
	cmd.SetContext(ctx)
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions) error {
	config, err := o.Config()
	if err != nil {
		return err
	}

	// As upstream's testserver.go: kubectl validates custom resources against /openapi/v2.
	getOpenAPIDefinitions := openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	namer := openapinamer.NewDefinitionNamer(apiserver.Scheme)
	config.GenericConfig.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(getOpenAPIDefinitions, namer)

	completed := config.Complete()
	// Complete() turns discovery off because kube-apiserver's aggregator serves /apis;
	// standing alone, this server must serve it itself.
	completed.GenericConfig.EnableDiscovery = true

	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}

	crdInformer := server.Informers.Apiextensions().V1().CustomResourceDefinitions()
	groups := &legacyGroupList{
		manager: server.GenericAPIServer.DiscoveryGroupManager,
		crds:    crdInformer.Lister(),
		listed:  map[string]bool{},
	}
	if _, err := crdInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { groups.sync() },
		UpdateFunc: func(any, any) { groups.sync() },
		DeleteFunc: func(any) { groups.sync() },
	}); err != nil {
		return err
	}

	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// legacyGroupList keeps the unaggregated /apis list (what kube-rs and older
// clients read) equal to the groups of the established CRDs, with the same
// versions and preferred version upstream's DiscoveryController serves at
// /apis/<group>.
type legacyGroupList struct {
	manager discovery.GroupManager
	crds    listers.CustomResourceDefinitionLister

	mu     sync.Mutex
	listed map[string]bool // groups this list added, so it removes only its own
}

func (l *legacyGroupList) sync() {
	l.mu.Lock()
	defer l.mu.Unlock()

	crds, err := l.crds.List(labels.Everything())
	if err != nil {
		klog.ErrorS(err, "listing CRDs for the legacy /apis group list")
		return
	}

	versions := map[string][]metav1.GroupVersionForDiscovery{}
	seen := map[string]bool{}
	for _, crd := range crds {
		if !apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
			continue
		}
		for _, v := range crd.Spec.Versions {
			gv := crd.Spec.Group + "/" + v.Name
			if !v.Served || seen[gv] {
				continue
			}
			seen[gv] = true
			versions[crd.Spec.Group] = append(versions[crd.Spec.Group], metav1.GroupVersionForDiscovery{GroupVersion: gv, Version: v.Name})
		}
	}

	for group, vs := range versions {
		if group == apiextensionsv1.GroupName {
			continue // served by this server itself; not ours to replace
		}
		sort.Slice(vs, func(i, j int) bool {
			return version.CompareKubeAwareVersionStrings(vs[i].Version, vs[j].Version) > 0
		})
		l.manager.AddGroup(metav1.APIGroup{Name: group, Versions: vs, PreferredVersion: vs[0]})
		l.listed[group] = true
	}
	for group := range l.listed {
		if _, ok := versions[group]; !ok {
			l.manager.RemoveGroup(group)
			delete(l.listed, group)
		}
	}
}
