// Command loadgen sends HTTP POSTs to one URL as fast as it can (closed loop)
// or at a fixed rate (open loop) and prints what it measured as one JSON object.
//
// meshfit's webhook benchmark needs a client that is never the bottleneck:
// a Python client on this 2-core machine saturates before an aiohttp server
// does, which would flatter every ratio. Go's HTTP/1.1 client on one core
// outruns the servers it measures, and kube-apiserver, the webhook's real
// client, is a Go HTTP client too. Standard library only, built by
// bench/loadgen.py into the user's cache.
//
// Bodies come from a file of JSON lines and are sent in turn, so a caller can
// make every request distinct. In open-loop mode latency is measured from the
// moment a request was due, not when it was sent, so a stalled server shows
// up in the percentiles instead of silently slowing the client down.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	FirstError  string         `json:"first_error,omitempty"`
	Seconds     float64        `json:"seconds"`
	RPS         float64        `json:"rps"`
	Concurrency int            `json:"concurrency"`
	Rate        float64        `json:"rate"`
	LatencyMs   map[string]any `json:"latency_ms"`
}

func main() {
	url := flag.String("url", "", "URL to POST to")
	bodiesPath := flag.String("bodies", "", "file with one request body per line")
	caPath := flag.String("cacert", "", "CA bundle for https URLs")
	concurrency := flag.Int("c", 8, "connections (and requests in flight at most)")
	duration := flag.Duration("duration", 5*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "load before measuring, not counted")
	rate := flag.Float64("rate", 0, "requests per second (open loop); 0 = as fast as the server answers")
	expect := flag.String("expect", "", "substring every answer body must contain")
	flag.Parse()

	bodies, err := readLines(*bodiesPath)
	if err != nil || len(bodies) == 0 {
		fail("reading bodies from %q: %v (%d bodies)", *bodiesPath, err, len(bodies))
	}
	client := &http.Client{Transport: transport(*caPath, *concurrency), Timeout: 30 * time.Second}
	var next atomic.Int64
	send := func() (time.Duration, error) {
		body := bodies[int(next.Add(1)-1)%len(bodies)]
		started := time.Now()
		req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, answer)
		}
		if *expect != "" && !bytes.Contains(answer, []byte(*expect)) {
			return 0, fmt.Errorf("answer lacks %q: %.200s", *expect, answer)
		}
		return time.Since(started), nil
	}

	var run func(time.Duration, *recorder)
	if *rate > 0 {
		run = func(d time.Duration, rec *recorder) { openLoop(d, *rate, *concurrency, send, rec) }
	} else {
		run = func(d time.Duration, rec *recorder) { closedLoop(d, *concurrency, send, rec) }
	}
	if *warmup > 0 {
		run(*warmup, &recorder{})
	}
	rec := &recorder{}
	started := time.Now()
	run(*duration, rec)
	elapsed := time.Since(started).Seconds()

	out := result{
		Requests: len(rec.samples), Errors: rec.errors, FirstError: rec.firstError, Seconds: elapsed,
		RPS: float64(len(rec.samples)) / elapsed, Concurrency: *concurrency, Rate: *rate,
		LatencyMs: rec.percentiles(),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("%v", err)
	}
}

func transport(caPath string, connections int) *http.Transport {
	tlsConfig := &tls.Config{}
	if caPath != "" {
		pem, err := os.ReadFile(caPath)
		if err != nil {
			fail("%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail("no certificate in %s", caPath)
		}
		tlsConfig.RootCAs = pool
	}
	return &http.Transport{
		TLSClientConfig:     tlsConfig,
		MaxConnsPerHost:     connections,
		MaxIdleConnsPerHost: connections,
		ForceAttemptHTTP2:   false,
		DisableCompression:  true,
	}
}

// closedLoop keeps `workers` requests in flight until `d` has passed.
func closedLoop(d time.Duration, workers int, send func() (time.Duration, error), rec *recorder) {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				rec.add(send())
			}
		}()
	}
	wg.Wait()
}

// openLoop starts a request every 1/rate seconds whatever the server does;
// latency counts from when the request was due.
func openLoop(d time.Duration, rate float64, connections int, send func() (time.Duration, error), rec *recorder) {
	interval := time.Duration(float64(time.Second) / rate)
	total := int(d.Seconds() * rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := send()
			rec.add(time.Since(due), err)
		}()
	}
	wg.Wait()
}

type recorder struct {
	mu         sync.Mutex
	samples    []time.Duration
	errors     int
	firstError string
}

func (r *recorder) add(latency time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.errors == 0 {
			r.firstError = err.Error()
		}
		r.errors++
		return
	}
	r.samples = append(r.samples, latency)
}

func (r *recorder) percentiles() map[string]any {
	if len(r.samples) == 0 {
		return map[string]any{}
	}
	sort.Slice(r.samples, func(i, j int) bool { return r.samples[i] < r.samples[j] })
	at := func(q float64) float64 {
		i := int(q * float64(len(r.samples)))
		if i >= len(r.samples) {
			i = len(r.samples) - 1
		}
		return float64(r.samples[i].Microseconds()) / 1000
	}
	return map[string]any{"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1)}
}

func readLines(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines [][]byte
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		if line := scanner.Bytes(); len(line) > 0 {
			lines = append(lines, append([]byte(nil), line...))
		}
	}
	return lines, scanner.Err()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}
