package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/posse-dev/posse/infra/local/devstack"
	"github.com/posse-dev/posse/infra/local/moto"
)

// mediaPlatforms are the platforms whose adapters upload video bytes from
// the dispatch function (X chunked, LinkedIn multi-part, the Bluesky video
// service, Mastodon's media upload) with the largest video each accepts:
// the adapter's cap, which the simulator accepts too. Facebook, Instagram
// and Threads pull the video from its URL themselves, and TikTok does too
// under the registry's default source (PULL_FROM_URL); its FILE_UPLOAD
// chunks stream like X's (see the adapter's contract tests).
var mediaPlatforms = []struct {
	name string
	max  int64
}{
	{"x", 512 << 20}, {"linkedin", 500 << 20}, {"bluesky", 300_000_000}, {"mastodon", 99 << 20},
}

// mediaMemory is the "media" part: the dispatch bootstrap's peak RSS
// (VmHWM, reset before each publish through /proc/<pid>/clear_refs) while
// it publishes one video per platform, streamed from the simulator's
// generated media. Each platform gets the smaller of its largest video and
// each size in POSSE_BENCH_MEDIA_MIB (default 64,512 MiB: a small video,
// then the largest each platform accepts); the goal is a flat RSS across
// sizes, at most 96 MiB in a 256 MB function.
func mediaMemory(root, tmp string) ([]result, error) {
	sizes, err := mediaSizes(os.Getenv("POSSE_BENCH_MEDIA_MIB"))
	if err != nil {
		return nil, err
	}
	bin, err := devstack.Build(root, tmp)
	if err != nil {
		return nil, err
	}
	ports := make([]string, 3)
	for i := range ports {
		p, err := moto.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = strconv.Itoa(p)
	}
	stateDir := filepath.Join(tmp, "media-stack")
	st, err := devstack.Launch(3*time.Minute, bin, "-instances", "1", "-gateway-port", ports[0], "-moto-port", ports[1],
		"-sim-port", ports[2], "-state-dir", stateDir)
	if err != nil {
		return nil, err
	}
	defer st.Stop()
	c := devstack.Client{API: st.Info["API URL"], Key: st.Info["Site API key"], SimURL: st.Info["Simulator"]}
	targets, err := benchTargets(c)
	if err != nil {
		return nil, err
	}
	// Only this stack's dispatch bootstrap: other stacks may run on the
	// same machine.
	bootstrap := filepath.Join(stateDir, "run", "DispatchFunction", "bootstrap")
	var out []result
	for _, size := range sizes {
		for _, p := range mediaPlatforms {
			n := min(size, p.max)
			resetPeakRSS(bootstrap)
			start := time.Now()
			id := fmt.Sprintf("media-%s-%d", p.name, n>>20)
			body := map[string]any{
				"post": map[string]any{"postId": id, "revision": "1", "title": "Bench " + id, "excerpt": "A video.",
					"url": "https://blog.example/" + id, "media": []map[string]string{{
						"url": c.SimURL + "/_sim/media/v.mp4?bytes=" + strconv.FormatInt(n, 10), "kind": "video", "altText": "a generated video"}}},
				"targetIds": []string{targets[p.name]},
			}
			var resp struct {
				Deliveries []struct{ ID string } `json:"deliveries"`
			}
			if err := c.Must(202, "POST", "/dispatch", body, &resp); err != nil {
				return nil, err
			}
			ids := make([]string, 0, len(resp.Deliveries))
			for _, d := range resp.Deliveries {
				ids = append(ids, d.ID)
			}
			if err := waitSent(c, ids, 10*time.Minute); err != nil {
				return nil, fmt.Errorf("%s %d MiB video: %w", p.name, n>>20, err)
			}
			rss, err := bootstrapHWM(bootstrap)
			if err != nil {
				return nil, err
			}
			out = append(out, result{Name: fmt.Sprintf("dispatch peak RSS, %s %d MiB video", p.name, n>>20), Value: rss, Unit: "MiB",
				Note: fmt.Sprintf("VmHWM while publishing; %.1f s; goal <= 96 MiB", time.Since(start).Seconds())})
		}
	}
	return out, nil
}

// mediaSizes reads "64,512" (MiB).
func mediaSizes(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		s = "64,512"
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("POSSE_BENCH_MEDIA_MIB: %q is not a size in MiB", f)
		}
		out = append(out, n<<20)
	}
	return out, nil
}

// bootstrapPIDs are the processes running exactly the bootstrap at path
// (not the RIE that runs it, whose arguments name it too).
func bootstrapPIDs(path string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if argv0, _, _ := strings.Cut(string(b), "\x00"); argv0 == path {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// resetPeakRSS resets VmHWM of the bootstrap at path (writing 5 to
// /proc/<pid>/clear_refs), so the next bootstrapHWM is the peak of what
// follows.
func resetPeakRSS(path string) {
	for _, pid := range bootstrapPIDs(path) {
		_ = os.WriteFile(filepath.Join("/proc", pid, "clear_refs"), []byte("5"), 0)
	}
}

// bootstrapHWM is the largest VmHWM, in MiB, of the bootstrap at path.
func bootstrapHWM(path string) (float64, error) {
	best := 0.0
	for _, pid := range bootstrapPIDs(path) {
		status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				best = max(best, kb/1024)
			}
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no running %s", path)
	}
	return best, nil
}
