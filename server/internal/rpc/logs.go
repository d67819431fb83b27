package rpc

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/plan"
)

func nowProto(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// logPoll is how often a followed log is checked for new output.
const logPoll = 200 * time.Millisecond

// Logs streams the stored output of a machine's jobs (or of one job), in
// job order, and with follow keeps streaming what the agents send.
func (s *provisionService) Logs(req *underlayv1.LogsRequest, stream underlayv1.ProvisionService_LogsServer) error {
	ctx := stream.Context()
	if req.GetMachineId() == "" && req.GetJobId() == "" {
		return toStatus(invalidf("a machine id or a job id is required"))
	}
	if err := s.read(ctx, nil); err != nil {
		return toStatus(err)
	}
	machineID := req.GetMachineId()
	if req.GetJobId() != "" {
		j, err := s.store.Job(req.GetJobId())
		if err != nil {
			return toStatus(notFoundf("job %q", req.GetJobId()))
		}
		machineID = j.GetMachineId()
	} else if _, err := s.store.Machine(machineID); err != nil {
		return toStatus(notFoundf("machine %q", machineID))
	}
	sent := map[string]uint64{} // job ID -> bytes sent
	t := time.NewTicker(logPoll)
	defer t.Stop()
	for {
		jobs := s.store.Jobs(machineID)
		allDone := true
		for _, j := range jobs {
			if req.GetJobId() != "" && j.GetId() != req.GetJobId() {
				continue
			}
			if !plan.Done(j.GetState()) {
				allDone = false
			}
			for _, c := range s.store.Logs(j.GetId(), sent[j.GetId()]) {
				if skip := sent[j.GetId()] - min(sent[j.GetId()], c.GetOffset()); skip > 0 {
					c.Data = c.GetData()[skip:]
					c.Offset += skip
				}
				if err := stream.Send(c); err != nil {
					return err
				}
				sent[j.GetId()] = c.GetOffset() + uint64(len(c.GetData()))
			}
		}
		if !req.GetFollow() || (req.GetJobId() != "" && allDone && len(jobs) > 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return errf(codes.Unavailable, "node %s is shutting down", s.cluster.ID())
		case <-t.C:
		}
	}
}
