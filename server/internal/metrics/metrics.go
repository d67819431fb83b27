// Package metrics defines the Prometheus collectors of a management node.
// Each node has its own registry, so several nodes can run in one process.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the collectors a node updates.
type Metrics struct {
	Registry        *prometheus.Registry
	GRPCRequests    *prometheus.CounterVec
	GRPCDuration    *prometheus.HistogramVec
	ApplyDuration   prometheus.Histogram
	AgentsConnected prometheus.Gauge
	Enrollments     *prometheus.CounterVec
	// Provisioning.
	JobsDispatched   prometheus.Counter
	JobsFinished     *prometheus.CounterVec
	DispatchLatency  prometheus.Histogram
	StepsWaiting     prometheus.Gauge
	PlansRunning     prometheus.Gauge
	OrchestratorPass prometheus.Histogram
}

// RaftSource reports Raft state for the scrape-time gauges.
type RaftSource interface {
	State() string
	Term() uint64
	CommitIndex() uint64
	AppliedIndex() uint64
	LastContactSeconds() float64
}

// New registers every collector on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		GRPCRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "underlay_grpc_requests_total",
			Help: "gRPC requests handled, by method and status code.",
		}, []string{"method", "code"}),
		GRPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "underlay_grpc_request_duration_seconds",
			Help:    "Latency of unary gRPC requests, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
		ApplyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "underlay_raft_apply_duration_seconds",
			Help:    "Time from proposing a command on the leader until it is committed and applied.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		AgentsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "underlay_agents_connected",
			Help: "Agent sessions currently held by this node.",
		}),
		Enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "underlay_enrollments_total",
			Help: "Enrollment attempts by result.",
		}, []string{"result"}),
	}
	m.JobsDispatched = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "underlay_jobs_dispatched_total",
		Help: "Jobs this node dispatched as the leader.",
	})
	m.JobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "underlay_jobs_finished_total",
		Help: "Job results this node received from agents, by result (succeeded, failed, cancelled, skipped).",
	}, []string{"result"})
	m.DispatchLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "underlay_job_dispatch_latency_seconds",
		Help:    "Time from a step becoming runnable to its agent starting it, for jobs delivered by this node.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	m.StepsWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "underlay_steps_waiting",
		Help: "Runnable steps held back (links, params, paused roles, offline machines), as the leader last counted.",
	})
	m.PlansRunning = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "underlay_plans_running",
		Help: "Plans running, as the leader last counted.",
	})
	m.OrchestratorPass = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "underlay_orchestrator_pass_seconds",
		Help:    "Duration of one pass of the leader's orchestrator over the running plans.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	reg.MustRegister(m.JobsDispatched, m.JobsFinished, m.DispatchLatency, m.StepsWaiting, m.PlansRunning, m.OrchestratorPass)
	reg.MustRegister(m.GRPCRequests, m.GRPCDuration, m.ApplyDuration, m.AgentsConnected, m.Enrollments,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchRaft registers gauges that read Raft state at scrape time.
func (m *Metrics) WatchRaft(src RaftSource) {
	states := []string{"leader", "follower", "candidate", "shutdown"}
	for _, s := range states {
		s := s
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "underlay_raft_state",
			Help:        "1 for the Raft state this node is in, 0 for the others.",
			ConstLabels: prometheus.Labels{"state": s},
		}, func() float64 {
			if src.State() == s {
				return 1
			}
			return 0
		}))
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "underlay_raft_term", Help: "Current Raft term."},
			func() float64 { return float64(src.Term()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "underlay_raft_commit_index", Help: "Raft commit index."},
			func() float64 { return float64(src.CommitIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "underlay_raft_applied_index", Help: "Last Raft index applied to the state store."},
			func() float64 { return float64(src.AppliedIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "underlay_raft_last_contact_seconds", Help: "Seconds since this node last heard from the leader (0 on the leader, -1 never)."},
			func() float64 { return src.LastContactSeconds() }),
	)
}
