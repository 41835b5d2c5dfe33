// Command benchhost is the host side of the ekuiper-sdk benchmark.
//
// It speaks the host's half of the portable-plugin protocol (docs/protocol.md) with
// mangos v3, the socket library the eKuiper server itself uses, so a Python plugin
// under test meets the same sockets it meets in production. Go keeps the host far
// from being the bottleneck: a Python host making one pynng call per frame tops out
// near the rates being measured.
//
// Two roles:
//
//	benchhost host -scenario S [flags] -- PLUGIN COMMAND...
//	    starts the plugin command like eKuiper does, runs scenario S against it and
//	    prints one JSON object with the figures on stdout.
//	benchhost peer -plugin NAME
//	    a plugin written in Go with mangos: the host's own capacity is measured by
//	    running the same scenarios against it.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/push"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
	_ "go.nanomsg.org/mangos/v3/transport/ipc"
)

// payload64 is the 64-byte text carried by every benchmark tuple and sink frame.
const payload64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func ipc(name string) string { return "ipc:///tmp/" + name + ".ipc" }

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "benchhost: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		die("usage: benchhost host|peer ...")
	}
	switch os.Args[1] {
	case "host":
		runHost(os.Args[2:])
	case "peer":
		runPeer(os.Args[2:])
	default:
		die("unknown role %q", os.Args[1])
	}
}

// ---------------------------------------------------------------------------
// The host role

type hostFlags struct {
	scenario   string
	plugin     string
	function   string
	prefix     string
	n          int
	trials     int
	requireAck bool
	symbol     string
	hangAfter  time.Duration
	log        string
	command    []string
}

// plugin is one started plugin process and the host's control socket for it.
type plugin struct {
	f       *hostFlags
	cmd     *exec.Cmd
	control mangos.Socket
	logFile *os.File
}

func setOpts(sock mangos.Socket, opts map[string]interface{}) {
	for k, v := range opts {
		if err := sock.SetOption(k, v); err != nil && err != mangos.ErrBadOption {
			die("option %s: %v", k, err)
		}
	}
}

func listen(sock mangos.Socket, url string) {
	// A socket file left by an earlier, killed run would make the listen fail.
	_ = os.Remove(strings.TrimPrefix(url, "ipc://"))
	if err := sock.Listen(url); err != nil {
		die("listen %s: %v", url, err)
	}
}

func newControl(name string) mangos.Socket {
	sock, err := rep.NewSocket()
	if err != nil {
		die("rep: %v", err)
	}
	setOpts(sock, map[string]interface{}{mangos.OptionRecvDeadline: 30 * time.Second,
		mangos.OptionMaxRecvSize: 0})
	listen(sock, ipc("plugin_"+name))
	return sock
}

// start launches the plugin command the way eKuiper does and waits for its handshake.
func (f *hostFlags) start(control mangos.Socket) *plugin {
	p := &plugin{f: f, control: control}
	args := append(append([]string{}, f.command[1:]...), `{"sendTimeout":1000}`)
	p.cmd = exec.Command(f.command[0], args...)
	p.cmd.Dir = filepath.Dir(f.command[len(f.command)-1])
	if f.log != "" {
		lf, err := os.OpenFile(f.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			die("log: %v", err)
		}
		p.logFile = lf
		p.cmd.Stdout, p.cmd.Stderr = lf, lf
	}
	if err := p.cmd.Start(); err != nil {
		die("start plugin: %v", err)
	}
	if _, err := control.Recv(); err != nil && err != mangos.ErrProtoState {
		p.kill()
		die("no handshake from the plugin: %v", err)
	}
	return p
}

func (p *plugin) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill() // eKuiper also ends a plugin with SIGKILL
		_, _ = p.cmd.Process.Wait()
	}
	if p.logFile != nil {
		_ = p.logFile.Close()
	}
}

// command sends one control command and waits for the plugin's answer, resending on a
// keepalive as eKuiper does. It returns the answer and the time it took.
func (p *plugin) command(cmd string, ctrl map[string]interface{}, wait time.Duration) (string, time.Duration, error) {
	argText, _ := json.Marshal(ctrl)
	frame, _ := json.Marshal(map[string]string{"cmd": cmd, "arg": string(argText)})
	setOpts(p.control, map[string]interface{}{mangos.OptionRecvDeadline: wait})
	t0 := time.Now()
	for {
		err := p.control.Send(frame)
		if err == mangos.ErrProtoState {
			if _, err = p.control.Recv(); err == nil {
				err = p.control.Send(frame)
			}
		}
		if err != nil {
			return "", 0, err
		}
		answer, err := p.control.Recv()
		if err != nil {
			return "", time.Since(t0), err
		}
		if len(answer) > 0 && answer[0] == 'h' {
			continue
		}
		return string(answer), time.Since(t0), nil
	}
}

func meta(rule string) map[string]interface{} {
	return map[string]interface{}{"ruleId": rule, "opId": "op", "instanceId": 0}
}

func startCtl(symbol, typ, rule string, config map[string]interface{}) map[string]interface{} {
	c := map[string]interface{}{"symbolName": symbol, "pluginType": typ, "meta": meta(rule)}
	if len(config) > 0 {
		c["config"] = config
	}
	return c
}

func (p *plugin) mustCommand(cmd string, ctrl map[string]interface{}) time.Duration {
	answer, took, err := p.command(cmd, ctrl, 30*time.Second)
	if err != nil || answer != "ok" {
		die("%s %v: answer %q, error %v", cmd, ctrl["symbolName"], answer, err)
	}
	return took
}

func newPull(url string, deadline time.Duration) mangos.Socket {
	sock, err := pull.NewSocket()
	if err != nil {
		die("pull: %v", err)
	}
	setOpts(sock, map[string]interface{}{mangos.OptionRecvDeadline: deadline,
		mangos.OptionMaxRecvSize: 0})
	listen(sock, url)
	return sock
}

func newRep(url string) mangos.Socket {
	sock, err := rep.NewSocket()
	if err != nil {
		die("rep: %v", err)
	}
	setOpts(sock, map[string]interface{}{mangos.OptionRecvDeadline: 5 * time.Second,
		mangos.OptionSendDeadline: 5 * time.Second, mangos.OptionRetryTime: 0,
		mangos.OptionMaxRecvSize: 0})
	listen(sock, url)
	return sock
}

func newPush(url string) mangos.Socket {
	sock, err := push.NewSocket()
	if err != nil {
		die("push: %v", err)
	}
	setOpts(sock, map[string]interface{}{mangos.OptionSendDeadline: 5 * time.Second,
		mangos.OptionMaxRecvSize: 0})
	if err := sock.DialOptions(url, map[string]interface{}{mangos.OptionDialAsynch: false}); err != nil {
		die("dial %s: %v", url, err)
	}
	return sock
}

func emit(result map[string]interface{}) {
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}

func runHost(argv []string) {
	f := &hostFlags{}
	fs := flag.NewFlagSet("host", flag.ExitOnError)
	fs.StringVar(&f.scenario, "scenario", "", "source|sink|func|stop-source|stop-sink|memory")
	fs.StringVar(&f.plugin, "plugin", "", "plugin name (the control socket's name)")
	fs.StringVar(&f.function, "function", "", "function symbol name (func scenario)")
	fs.StringVar(&f.prefix, "prefix", "bench", "prefix of rule ids, unique per run")
	fs.StringVar(&f.symbol, "symbol", "bench", "source or sink symbol name")
	fs.IntVar(&f.n, "n", 10000, "frames or calls to measure")
	fs.IntVar(&f.trials, "trials", 10, "stop trials")
	fs.BoolVar(&f.requireAck, "ack", false, "sink: set requireAck")
	fs.DurationVar(&f.hangAfter, "hang-after", 2*time.Second, "a stop unanswered this long counts as hung")
	fs.StringVar(&f.log, "log", "", "file for the plugin's stdout and stderr")
	fs.BoolVar(&useMangos, "mangos", false, "use mangos for the data sockets too (slower host)")
	_ = fs.Parse(argv)
	f.command = fs.Args()
	if len(f.command) == 0 || f.plugin == "" {
		die("host: -plugin and a plugin command are required")
	}
	// The driver ends the whole process group on interrupt; ignore it here so the
	// deferred kill of the plugin is what runs.
	signal.Ignore(syscall.SIGPIPE)
	control := newControl(f.plugin)
	defer func() {
		_ = control.Close()
		_ = os.Remove("/tmp/plugin_" + f.plugin + ".ipc")
	}()
	p := f.start(control)
	var result map[string]interface{}
	switch f.scenario {
	case "source":
		result = scenarioSource(p)
	case "sink":
		result = scenarioSink(p)
	case "func":
		result = scenarioFunc(p)
	case "stop-source", "stop-sink":
		p, result = scenarioStop(p, control, strings.TrimPrefix(f.scenario, "stop-"))
	case "memory":
		result = scenarioMemory(p)
	default:
		p.kill()
		die("unknown scenario %q", f.scenario)
	}
	p.kill()
	result["scenario"] = f.scenario
	emit(result)
}

// scenarioSource counts the tuples a source sends; the rate runs from the first
// tuple to the last, so process and socket start-up are not part of it.
func scenarioSource(p *plugin) map[string]interface{} {
	rule := p.f.prefix + "_src"
	url := ipc(rule + "_op_0")
	sock := dataPull(url, 5*time.Second)
	defer func() { sock.Close(); _ = os.Remove(strings.TrimPrefix(url, "ipc://")) }()
	p.mustCommand("start", startCtl(p.f.symbol, "source", rule,
		map[string]interface{}{"count": p.f.n}))
	var first time.Time
	var bytes int
	var cpu0, pcpu0 float64
	for i := 0; i < p.f.n; i++ {
		frame, err := sock.Recv()
		if err != nil {
			die("source: after %d tuples: %v", i, err)
		}
		if i == 0 {
			first = time.Now()
			cpu0 = cpuSeconds()
			pcpu0 = procCPU(p.cmd.Process.Pid)
			checkTuple(frame)
		}
		bytes += len(frame)
	}
	elapsed := time.Since(first).Seconds()
	cpu := cpuSeconds() - cpu0
	pcpu := procCPU(p.cmd.Process.Pid) - pcpu0
	sock.Close()
	p.mustCommand("stop", startCtl(p.f.symbol, "source", rule, nil))
	return map[string]interface{}{"n": p.f.n, "seconds": elapsed,
		"rate": float64(p.f.n-1) / elapsed, "bytes_per_frame": bytes / p.f.n,
		"host_cpu": cpu / elapsed, "plugin_cpu_us": pcpu / float64(p.f.n-1) * 1e6}
}

// cpuSeconds is the CPU time the host process has used so far: divided by the wall
// time of a measurement, it is the share of a core the host needed for it.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// procCPU is the CPU time a process (all its threads) and its living child processes
// have used so far, from /proc/PID/stat: divided by the frames of a measurement, the
// plugin's cost per frame, a figure that a busy machine disturbs far less than a rate.
// The children count because a supervised plugin serves from a worker process.
func procCPU(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var utime, stime float64
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	total := (utime + stime) / 100 // USER_HZ is 100 on Linux
	for _, child := range childPids(pid) {
		total += procCPU(child)
	}
	return total
}

// childPids lists the living child processes of pid (of all its threads).
func childPids(pid int) []int {
	var pids []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, kid := range strings.Fields(string(kids)) {
			var child int
			fmt.Sscan(kid, &child)
			pids = append(pids, child)
		}
	}
	return pids
}

func checkTuple(frame []byte) {
	var tuple struct {
		Message map[string]interface{} `json:"message"`
	}
	if err := json.Unmarshal(frame, &tuple); err != nil || tuple.Message == nil {
		die("a source frame eKuiper could not read as a tuple: %q (%v)", frame, err)
	}
}

func sinkFrame(i int) []byte {
	return []byte(fmt.Sprintf(`{"seq":%d,"data":"%s"}`, i, payload64))
}

// scenarioSink pushes frames to a sink; the sink writes, to the result file named in
// its configuration, how long it took from its first collect to its n-th.
func scenarioSink(p *plugin) map[string]interface{} {
	rule := p.f.prefix + "_sink"
	resultFile := filepath.Join(os.TempDir(), p.f.prefix+"_sink.json")
	_ = os.Remove(resultFile)
	defer os.Remove(resultFile)
	ackURL := ipc(rule + "_op_0_ack")
	acks := dataPull(ackURL, 5*time.Second)
	defer func() { acks.Close(); _ = os.Remove(strings.TrimPrefix(ackURL, "ipc://")) }()
	p.mustCommand("start", startCtl(p.f.symbol, "sink", rule, map[string]interface{}{
		"requireAck": p.f.requireAck, "sendSingle": true, "format": "json",
		"count": p.f.n, "resultFile": resultFile}))
	sock := dataPush(ipc(rule + "_op_0"))
	frames := make([][]byte, p.f.n)
	for i := range frames {
		frames[i] = sinkFrame(i)
	}
	t0, cpu0, pcpu0 := time.Now(), cpuSeconds(), procCPU(p.cmd.Process.Pid)
	for i, frame := range frames {
		// Without acks the host may batch its writes; with acks each frame must go now.
		if err := sock.Send(frame, p.f.requireAck || i == len(frames)-1); err != nil {
			die("sink: frame %d: %v", i, err)
		}
		if p.f.requireAck {
			ack, err := acks.Recv()
			if err != nil {
				die("sink: no ack for frame %d: %v", i, err)
			}
			if string(ack) != "{}" {
				die("sink: ack %q for frame %d", ack, i)
			}
		}
	}
	pushed := time.Since(t0).Seconds()
	var measured struct {
		Count   int     `json:"count"`
		Seconds float64 `json:"seconds"`
	}
	give := time.Now().Add(60 * time.Second)
	for {
		data, err := os.ReadFile(resultFile)
		if err == nil && json.Unmarshal(data, &measured) == nil && measured.Count == p.f.n {
			break
		}
		if time.Now().After(give) {
			die("sink: the plugin did not report %d frames collected", p.f.n)
		}
		time.Sleep(time.Millisecond)
	}
	// The host's share of a core from its first frame until the plugin had them all.
	hostCPU := (cpuSeconds() - cpu0) / time.Since(t0).Seconds()
	pcpu := procCPU(p.cmd.Process.Pid) - pcpu0
	sock.Close()
	acks.Close()
	p.mustCommand("stop", startCtl(p.f.symbol, "sink", rule, nil))
	return map[string]interface{}{"n": p.f.n, "seconds": measured.Seconds,
		"rate": float64(p.f.n-1) / measured.Seconds, "host_push_seconds": pushed,
		"host_cpu": hostCPU, "plugin_cpu_us": pcpu / float64(p.f.n) * 1e6}
}

// scenarioFunc calls Exec one call at a time, as a rule does.
func scenarioFunc(p *plugin) map[string]interface{} {
	if p.f.function == "" {
		die("func: -function is required")
	}
	url := ipc("func_" + p.f.function)
	sock := funcRep(url)
	defer func() { sock.Close(); _ = os.Remove(strings.TrimPrefix(url, "ipc://")) }()
	start := map[string]interface{}{"symbolName": p.f.function, "pluginType": "func",
		"meta": map[string]interface{}{"ruleId": "", "opId": "", "instanceId": 0}}
	p.mustCommand("start", start)
	pending, err := sock.Recv() // the function channel's handshake, held until the first call
	if err != nil {
		die("func: no handshake: %v", err)
	}
	// Each call answers the plugin's pending request (reusing its 4-byte id) with the
	// host's request; the plugin's answer comes back as its next request.
	reply := make([]byte, 0, 512)
	call := func(request []byte) []byte {
		for {
			reply = append(append(reply[:0], pending[:4]...), request...)
			if err := sock.Send(reply, true); err != nil {
				die("func: send: %v", err)
			}
			pending, err = sock.Recv()
			if err != nil {
				die("func: no answer: %v", err)
			}
			answer := pending[4:]
			if len(answer) > 0 && answer[0] == 'h' {
				continue // a keepalive: send the request again
			}
			return answer
		}
	}
	fctx, _ := json.Marshal(map[string]interface{}{"ruleId": p.f.prefix + "_fn", "opId": "op",
		"instanceId": 0, "funcId": 0})
	exec, _ := json.Marshal(map[string]interface{}{"func": "Exec",
		"arg": []interface{}{"hello, eKuiper", string(fctx)}})
	checkReply(call([]byte(`{"func":"IsAggregate","arg":null}`)))
	checkReply(call(exec))
	t0, cpu0, pcpu0 := time.Now(), cpuSeconds(), procCPU(p.cmd.Process.Pid)
	for i := 0; i < p.f.n; i++ {
		answer := call(exec)
		if i == 0 {
			checkReply(answer)
		}
	}
	elapsed := time.Since(t0).Seconds()
	return map[string]interface{}{"n": p.f.n, "seconds": elapsed, "rate": float64(p.f.n) / elapsed,
		"host_cpu":      (cpuSeconds() - cpu0) / elapsed,
		"plugin_cpu_us": (procCPU(p.cmd.Process.Pid) - pcpu0) / float64(p.f.n) * 1e6}
}

func checkReply(answer []byte) {
	var reply struct {
		State  bool        `json:"state"`
		Result interface{} `json:"result"`
	}
	if err := json.Unmarshal(answer, &reply); err != nil || !reply.State {
		die("func: bad reply %q (%v)", answer, err)
	}
}

// scenarioStop stops a running source or sink while data flows and times the answer,
// the way eKuiper stops a rule: close its own sockets, then send stop. A stop that is
// not answered within -hang-after leaves the control channel dead: the plugin is
// killed and started again for the remaining trials, and the hang is counted.
func scenarioStop(p *plugin, control mangos.Socket, kind string) (*plugin, map[string]interface{}) {
	var latencies []float64
	hangs := 0
	for t := 0; t < p.f.trials; t++ {
		rule := fmt.Sprintf("%s_stop%s%d", p.f.prefix, kind, t)
		var closeData func()
		var flowing func() int64
		var received int64
		if kind == "source" {
			url := ipc(rule + "_op_0")
			sock := dataPull(url, 200*time.Millisecond)
			p.mustCommand("start", startCtl(p.f.symbol, "source", rule,
				map[string]interface{}{"count": 0}))
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if _, err := sock.Recv(); err != nil {
						if err == mangos.ErrRecvTimeout {
							continue
						}
						return
					}
					atomic.AddInt64(&received, 1)
				}
			}()
			closeData = func() {
				sock.Close()
				<-done
				_ = os.Remove(strings.TrimPrefix(url, "ipc://"))
			}
		} else {
			ackURL := ipc(rule + "_op_0_ack")
			acks := dataPull(ackURL, time.Second)
			p.mustCommand("start", startCtl(p.f.symbol, "sink", rule,
				map[string]interface{}{"requireAck": false, "sendSingle": true}))
			// mangos here, whatever -mangos says: its bounded send queue keeps the data
			// flowing at the plugin's pace, and the stop does not wait behind a buffer.
			sock := newPush(ipc(rule + "_op_0"))
			setOpts(sock, map[string]interface{}{mangos.OptionSendDeadline: 200 * time.Millisecond})
			var quit int32
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; atomic.LoadInt32(&quit) == 0; i++ {
					if err := sock.Send(sinkFrame(i)); err != nil {
						if err == mangos.ErrSendTimeout {
							continue
						}
						return
					}
					atomic.AddInt64(&received, 1)
				}
			}()
			closeData = func() {
				atomic.StoreInt32(&quit, 1)
				<-done
				_ = sock.Close()
				acks.Close()
				_ = os.Remove(strings.TrimPrefix(ackURL, "ipc://"))
			}
		}
		flowing = func() int64 { return atomic.LoadInt64(&received) }
		// Let data flow for a while (at least a few hundred frames) before stopping.
		give := time.Now().Add(3 * time.Second)
		time.Sleep(100 * time.Millisecond)
		for flowing() < 300 && time.Now().Before(give) {
			time.Sleep(10 * time.Millisecond)
		}
		closeData()
		answer, took, err := p.command("stop", startCtl(p.f.symbol, kind, rule, nil), p.f.hangAfter)
		if err != nil {
			hangs++
			p.kill()
			p = p.f.start(control)
			continue
		}
		if answer != "ok" {
			die("stop %s: answer %q", kind, answer)
		}
		latencies = append(latencies, took.Seconds()*1000)
	}
	sort.Float64s(latencies)
	return p, map[string]interface{}{"trials": p.f.trials, "hangs": hangs, "latencies_ms": latencies}
}

// scenarioMemory reads the plugin's resident size when idle, then with ten running
// symbols (five sources emitting ten tuples a second and five sinks receiving).
func scenarioMemory(p *plugin) map[string]interface{} {
	time.Sleep(time.Second)
	idle := rssKiB(p.cmd.Process.Pid)
	var socks []mangos.Socket
	var datas []dataSocket
	var urls []string
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		rule := fmt.Sprintf("%s_memsrc%d", p.f.prefix, i)
		url := ipc(rule + "_op_0")
		sock := dataPull(url, 100*time.Millisecond)
		datas, urls = append(datas, sock), append(urls, url)
		p.mustCommand("start", startCtl(p.f.symbol, "source", rule,
			map[string]interface{}{"count": 0, "interval": 0.1}))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := sock.Recv(); err != nil && err != mangos.ErrRecvTimeout {
					return
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		rule := fmt.Sprintf("%s_memsink%d", p.f.prefix, i)
		url := ipc(rule + "_op_0_ack")
		acks := dataPull(url, time.Second)
		datas, urls = append(datas, acks), append(urls, url)
		p.mustCommand("start", startCtl(p.f.symbol, "sink", rule,
			map[string]interface{}{"sendSingle": true}))
		sock := newPush(ipc(rule + "_op_0"))
		socks = append(socks, sock)
		for j := 0; j < 10; j++ {
			_ = sock.Send(sinkFrame(j))
		}
	}
	time.Sleep(time.Second)
	running := rssKiB(p.cmd.Process.Pid)
	for _, s := range socks {
		_ = s.Close()
	}
	for _, s := range datas {
		s.Close()
	}
	wg.Wait()
	for _, u := range urls {
		_ = os.Remove(strings.TrimPrefix(u, "ipc://"))
	}
	return map[string]interface{}{"idle_kib": idle, "running10_kib": running}
}

// rssKiB is the resident size of pid and of its living child processes (a supervised
// plugin's worker and spare).
func rssKiB(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		die("memory: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kib int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &kib)
			for _, child := range childPids(pid) {
				kib += rssKiB(child)
			}
			return kib
		}
	}
	die("memory: no VmRSS for pid %d", pid)
	return 0
}

// ---------------------------------------------------------------------------
// The peer role: a plugin written in Go, to measure what the host itself can do.

func runPeer(argv []string) {
	fs := flag.NewFlagSet("peer", flag.ExitOnError)
	name := fs.String("plugin", "", "plugin name")
	_ = fs.Parse(argv)
	sock, err := req.NewSocket()
	if err != nil {
		die("req: %v", err)
	}
	setOpts(sock, map[string]interface{}{mangos.OptionRetryTime: time.Duration(0),
		mangos.OptionRecvDeadline: 5 * time.Second, mangos.OptionMaxRecvSize: 0})
	if err := sock.DialOptions(ipc("plugin_"+*name), map[string]interface{}{mangos.OptionDialAsynch: false}); err != nil {
		die("peer: dial: %v", err)
	}
	stops := map[string]chan struct{}{}
	answer := []byte("handshake")
	for {
		if err := sock.Send(answer); err != nil {
			die("peer: send: %v", err)
		}
		frame, err := sock.Recv()
		if err == mangos.ErrRecvTimeout {
			answer = []byte("handshake")
			continue
		}
		if err != nil {
			return
		}
		var cmd struct{ Cmd, Arg string }
		var ctrl struct {
			SymbolName string
			PluginType string
			Meta       struct {
				RuleID     string `json:"ruleId"`
				OpID       string `json:"opId"`
				InstanceID int    `json:"instanceId"`
			}
			Config map[string]interface{}
		}
		_ = json.Unmarshal(frame, &cmd)
		_ = json.Unmarshal([]byte(cmd.Arg), &ctrl)
		stem := fmt.Sprintf("%s_%s_%d", ctrl.Meta.RuleID, ctrl.Meta.OpID, ctrl.Meta.InstanceID)
		answer = []byte("ok")
		if cmd.Cmd == "stop" {
			if ch, ok := stops[stem]; ok {
				close(ch)
				delete(stops, stem)
			}
			continue
		}
		stop := make(chan struct{})
		switch ctrl.PluginType {
		case "source":
			stops[stem] = stop
			go peerSource(ipc(stem), ctrl.Config, stop)
		case "sink":
			stops[stem] = stop
			// The host dials right after "ok": listen before answering.
			in := rawListen(ipc(stem), protoPull, protoPush, 100*time.Millisecond)
			go peerSink(in, ipc(stem+"_ack"), ctrl.Config, stop)
		case "func":
			go peerFunc(ipc("func_" + ctrl.SymbolName))
		}
	}
}

// The peer's data sockets are raw and buffered: it measures how fast the host reads,
// writes and answers, so it must itself cost as little as possible per frame.

func peerSource(url string, config map[string]interface{}, stop chan struct{}) {
	sock := rawDial(url, protoPush, protoPull)
	defer sock.Close()
	count, _ := config["count"].(float64)
	frame := []byte(`{"message":{"seq":0,"data":"` + payload64 + `"},"meta":null}`)
	for i := 0; count <= 0 || i < int(count); i++ {
		select {
		case <-stop:
			return
		default:
		}
		if err := sock.Send(frame, i == int(count)-1); err != nil {
			return
		}
	}
	<-stop
}

func peerSink(in *rawSocket, ackURL string, config map[string]interface{}, stop chan struct{}) {
	defer in.Close()
	acks := rawDial(ackURL, protoPush, protoPull)
	defer acks.Close()
	requireAck, _ := config["requireAck"].(bool)
	count, _ := config["count"].(float64)
	resultFile, _ := config["resultFile"].(string)
	n := 0
	var first time.Time
	for {
		select {
		case <-stop:
			return
		default:
		}
		frame, err := in.Recv()
		if err == mangos.ErrRecvTimeout {
			continue
		}
		if err != nil {
			return
		}
		var record map[string]interface{}
		_ = json.Unmarshal(frame, &record)
		n++
		if n == 1 {
			first = time.Now()
		}
		if requireAck {
			_ = acks.Send([]byte("{}"), true)
		}
		if n == int(count) && resultFile != "" {
			out, _ := json.Marshal(map[string]interface{}{"count": n, "seconds": time.Since(first).Seconds()})
			_ = os.WriteFile(resultFile+".tmp", out, 0o644)
			_ = os.Rename(resultFile+".tmp", resultFile)
		}
	}
}

func peerFunc(url string) {
	sock := rawDial(url, protoReq, protoRep)
	sock.deadline = time.Hour
	id := uint32(0x80000000)
	request := func(body []byte) error {
		id++
		var head [4]byte
		binary.BigEndian.PutUint32(head[:], id)
		return sock.Send(append(head[:], body...), true)
	}
	answer := []byte("handshake")
	for {
		if err := request(answer); err != nil {
			return
		}
		frame, err := sock.Recv()
		if err != nil {
			return
		}
		var call struct {
			Func string
			Arg  []interface{}
		}
		_ = json.Unmarshal(frame[4:], &call)
		result := interface{}(false)
		if call.Func == "Exec" && len(call.Arg) > 0 {
			s, _ := call.Arg[0].(string)
			r := []rune(s)
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			result = string(r)
		}
		answer, _ = json.Marshal(map[string]interface{}{"state": true, "result": result})
	}
}
