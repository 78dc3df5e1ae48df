// Command pubsub-emulator serves Google's fake Pub/Sub server (package pstest of
// cloud.google.com/go/pubsub) on a loopback address, for the local stack.
//
// Every pstest release drops message bodies on a time-based Seek; `make setup`
// builds this against a copy of pstest patched by patch_pstest.py so that a
// replayed subscription redelivers the original messages.
package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "host:port to listen on (loopback by default)")
	flag.Parse()

	srv := pstest.NewServerWithAddress(*addr)
	log.Printf("pubsub emulator listening on %s", srv.Addr)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	if err := srv.Close(); err != nil {
		log.Printf("close: %v", err)
	}
}
