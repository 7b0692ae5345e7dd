// The peer of `npm run bench -- --peer`: go-control-plane's reference ADS server
// (its server package over a SnapshotCache, SotW and delta on one port), serving
// one snapshot to every node: N services x M endpoints, shaped like what Tessera
// serves a sidecar (an EDS cluster and a ClusterLoadAssignment per service, the
// `outbound_http` listener and its RDS route table with one virtual host per
// service). POST /add-endpoint?service=svc-0&address=10.1.0.1 adds that endpoint
// (port 8080) to the service and sets a new snapshot: the change the benchmark times.
//
// On start it prints one JSON line to stdout: {"xdsPort":…,"httpPort":…}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// oneGroup maps every node to the same snapshot key: all proxies see one snapshot.
type oneGroup struct{}

func (oneGroup) ID(*core.Node) string { return "all" }

const outboundHTTP = "outbound_http"

func clusterName(service string) string { return fmt.Sprintf("outbound|80||%s.default", service) }

var adsSource = &core.ConfigSource{
	ResourceApiVersion:    core.ApiVersion_V3,
	ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
}

func edsCluster(service string) types.Resource {
	return &cluster.Cluster{
		Name:                 clusterName(service),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource, ServiceName: clusterName(service)},
		ConnectTimeout:       durationpb.New(5e9),
	}
}

func loadAssignment(service string, addresses []string) types.Resource {
	lbs := make([]*endpoint.LbEndpoint, 0, len(addresses))
	for _, a := range addresses {
		lbs = append(lbs, &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: &core.Address{
				Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: a, PortSpecifier: &core.SocketAddress_PortValue{PortValue: 8080},
				}},
			}}},
			HealthStatus: core.HealthStatus_HEALTHY,
		})
	}
	return &endpoint.ClusterLoadAssignment{
		ClusterName: clusterName(service),
		Endpoints: []*endpoint.LocalityLbEndpoints{{
			Locality: &core.Locality{}, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: lbs,
		}},
	}
}

func routeTable(services []string) types.Resource {
	hosts := make([]*route.VirtualHost, 0, len(services))
	for _, s := range services {
		hosts = append(hosts, &route.VirtualHost{
			Name: s + ".default:80",
			Domains: []string{s, s + ":80", s + ".default", s + ".default:80", s + ".default.svc", s + ".default.svc:80",
				s + ".default.svc.cluster.local", s + ".default.svc.cluster.local:80"},
			Routes: []*route.Route{{
				Name:   "default",
				Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName(s)}}},
			}},
		})
	}
	return &route.RouteConfiguration{Name: outboundHTTP, VirtualHosts: hosts}
}

func outboundListener() types.Resource {
	routerConfig, _ := anypb.New(&router.Router{})
	manager, err := anypb.New(&hcm.HttpConnectionManager{
		CodecType:           hcm.HttpConnectionManager_AUTO,
		StatPrefix:          outboundHTTP,
		RouteSpecifier:      &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{ConfigSource: adsSource, RouteConfigName: outboundHTTP}},
		HttpProtocolOptions: &core.Http1ProtocolOptions{AllowAbsoluteUrl: wrapperspb.Bool(true)},
		HttpFilters:         []*hcm.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: routerConfig}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	return &listener.Listener{
		Name: outboundHTTP,
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15001},
		}}},
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: manager},
		}}}},
	}
}

// mesh holds the endpoints and builds snapshots. CDS, LDS and RDS keep version "1";
// only EDS gets a new version on a change, as a go-control-plane user would version
// them, so SotW re-sends only EDS (delta: only the changed load assignment).
type mesh struct {
	mu        sync.Mutex
	services  []string
	addresses map[string][]string
	edsVer    int
	snapshots cache.SnapshotCache
	static    [3]cache.Resources
}

func (m *mesh) publish() error {
	m.edsVer++
	las := make([]types.Resource, 0, len(m.services))
	for _, s := range m.services {
		las = append(las, loadAssignment(s, m.addresses[s]))
	}
	snap := &cache.Snapshot{}
	snap.Resources[types.Cluster] = m.static[0]
	snap.Resources[types.Listener] = m.static[1]
	snap.Resources[types.Route] = m.static[2]
	snap.Resources[types.Endpoint] = cache.NewResources(strconv.Itoa(m.edsVer), las)
	if err := snap.Consistent(); err != nil {
		return err
	}
	return m.snapshots.SetSnapshot(context.Background(), "all", snap)
}

func main() {
	services := flag.Int("services", 100, "number of services")
	perService := flag.Int("endpoints", 2, "endpoints per service")
	xdsAddr := flag.String("xds-addr", "127.0.0.1:0", "ADS listen address")
	httpAddr := flag.String("http-addr", "127.0.0.1:0", "trigger HTTP listen address")
	flag.Parse()

	m := &mesh{addresses: map[string][]string{}, snapshots: cache.NewSnapshotCache(true, oneGroup{}, nil)}
	clusters := []types.Resource{}
	for i := 0; i < *services; i++ {
		s := fmt.Sprintf("svc-%d", i)
		m.services = append(m.services, s)
		for e := 0; e < *perService; e++ {
			m.addresses[s] = append(m.addresses[s], fmt.Sprintf("10.0.%d.%d", i%250, e+1))
		}
		clusters = append(clusters, edsCluster(s))
	}
	m.static = [3]cache.Resources{
		cache.NewResources("1", clusters),
		cache.NewResources("1", []types.Resource{outboundListener()}),
		cache.NewResources("1", []types.Resource{routeTable(m.services)}),
	}
	if err := m.publish(); err != nil {
		log.Fatalf("initial snapshot: %v", err)
	}

	grpcServer := grpc.NewServer(grpc.MaxConcurrentStreams(1_000_000))
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, server.NewServer(context.Background(), m.snapshots, nil))
	xdsListener, err := net.Listen("tcp", *xdsAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(grpcServer.Serve(xdsListener)) }()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-endpoint", func(w http.ResponseWriter, r *http.Request) {
		s, address := r.URL.Query().Get("service"), r.URL.Query().Get("address")
		if net.ParseIP(address) == nil {
			http.Error(w, fmt.Sprintf("address %q is not an IP address", address), http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.addresses[s]; !ok {
			http.Error(w, fmt.Sprintf("no service %q", s), http.StatusNotFound)
			return
		}
		m.addresses[s] = append(m.addresses[s], address)
		if err := m.publish(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"address": address, "port": 8080, "edsVersion": strconv.Itoa(m.edsVer)})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	httpListener, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]int{
		"xdsPort":  xdsListener.Addr().(*net.TCPAddr).Port,
		"httpPort": httpListener.Addr().(*net.TCPAddr).Port,
	})
	log.Fatal(http.Serve(httpListener, mux))
}
