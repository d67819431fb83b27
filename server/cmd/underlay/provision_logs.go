package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

func (a *app) newLogsCmd() *cobra.Command {
	var (
		follow, prefix bool
		job            string
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] (MACHINE | --job JOB)",
		Short: "Print the output of a machine's jobs, or of one job",
		Long: `Print what the jobs of a machine (or one job, with --job) wrote: stdout,
stderr and the agent's own notes, all to this command's stdout, in order.
Without -f the output there is so far is printed and the command exits; with
-f it keeps following new output (of new jobs too, for a machine) until
Ctrl-C, and --timeout does not apply (without -f it bounds the whole
transfer). --prefix starts every line with the step's name in brackets. With
-o json every chunk is one JSON object per line (data is base64, as protobuf
JSON encodes bytes).`,
		Example: `  underlay logs m-3fa9c0d2e1b4
  underlay logs -f --prefix m-3fa9c0d2e1b4
  underlay logs --job j-81c2e0 -f`,
		Args: rangeArgs(0, 1, "one MACHINE, or none with --job"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &underlayv1.LogsRequest{JobId: job, Follow: follow}
			switch {
			case len(args) == 1 && job != "":
				return usagef("give a MACHINE or --job JOB, not both")
			case len(args) == 1:
				req.MachineId = args[0]
			case job == "":
				return usagef("say whose logs to print: a MACHINE or --job JOB")
			}
			run := a.session
			if !follow {
				run = a.call
			}
			return run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				stream, err := c.Provision.Logs(ctx, req)
				if err != nil {
					return err
				}
				lw := &logWriter{w: p.w, prefix: prefix, names: a.jobNames(c, req.GetMachineId())}
				for {
					ch, err := stream.Recv()
					if done, err := streamEnd(cmd.Context(), err); done {
						if endErr := lw.end(); err == nil {
							err = endErr
						}
						return err
					}
					if p.format != formatTable {
						if err := p.line(ch, ""); err != nil {
							return fmt.Errorf("write log: %w", err)
						}
						continue
					}
					if err := lw.write(ctx, ch); err != nil {
						return fmt.Errorf("write log: %w", err)
					}
				}
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new output until Ctrl-C")
	f.StringVar(&job, "job", "", "print only this job's output")
	f.BoolVar(&prefix, "prefix", false, "start each line with [step-name]")
	return cmd
}

// jobNames returns a lookup from job ID to step name. It lists the jobs of
// the machine (or of the chunk's machine) again when it meets a job it does
// not know, so jobs that start while following are named too.
func (a *app) jobNames(c *client.Client, machineID string) func(ctx context.Context, ch *underlayv1.LogChunk) string {
	names := map[string]string{}
	return func(ctx context.Context, ch *underlayv1.LogChunk) string {
		if n, ok := names[ch.GetJobId()]; ok {
			return n
		}
		m := machineID
		if m == "" {
			m = ch.GetMachineId()
		}
		if m != "" {
			rctx, cancel := context.WithTimeout(ctx, a.timeout)
			r, err := c.Provision.ListJobs(rctx, &underlayv1.ListJobsRequest{Read: a.readOptions(), MachineId: m})
			cancel()
			if err == nil {
				for _, j := range r.GetJobs() {
					names[j.GetId()] = j.GetStepName()
				}
			}
		}
		if n := names[ch.GetJobId()]; n != "" {
			return n
		}
		names[ch.GetJobId()] = ch.GetJobId() // unknown: name it by its ID, ask once
		return ch.GetJobId()
	}
}

// logWriter writes chunks' data, optionally starting each line with
// "[step] ". When the job changes in the middle of a line, the line is
// ended first so that prefixes stay at the start of lines.
type logWriter struct {
	w       io.Writer
	prefix  bool
	names   func(context.Context, *underlayv1.LogChunk) string
	lastJob string
	midLine bool
}

func (l *logWriter) write(ctx context.Context, ch *underlayv1.LogChunk) error {
	data := ch.GetData()
	if len(data) == 0 {
		return nil
	}
	if !l.prefix {
		_, err := l.w.Write(data)
		l.midLine = data[len(data)-1] != '\n'
		return err
	}
	if l.midLine && ch.GetJobId() != l.lastJob {
		if _, err := io.WriteString(l.w, "\n"); err != nil {
			return err
		}
		l.midLine = false
	}
	l.lastJob = ch.GetJobId()
	tag := []byte("[" + l.names(ctx, ch) + "] ")
	var b bytes.Buffer
	for len(data) > 0 {
		if !l.midLine {
			b.Write(tag)
		}
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		b.Write(line)
		data = data[len(line):]
		l.midLine = line[len(line)-1] != '\n'
	}
	_, err := l.w.Write(b.Bytes())
	return err
}

// end finishes a last line that had no newline, when lines are prefixed.
func (l *logWriter) end() error {
	if l.prefix && l.midLine {
		l.midLine = false
		_, err := io.WriteString(l.w, "\n")
		return err
	}
	return nil
}
