package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/eventsvc/eventsvc/client"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// Subscribe to one channel's failed deliveries from the start of the log,
// until Ctrl-C. A consumer that must survive its own restarts saves
// m.Cursor once it has processed a message, and starts the next time with
// AfterSequence and Epoch set from it.
func ExampleClient_Subscribe() {
	c, err := client.Dial(client.Options{
		Address:  "localhost:9090",
		Insecure: true, // a local eventsvc without TLS
		Token:    os.Getenv("EVENTSVC_TOKEN"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	req := &eventsv1.StreamEventsRequest{
		ChannelKeys:  []string{"twlo_16311113333"},
		Statuses:     []eventsv1.Status{eventsv1.Status_STATUS_FAILED},
		FromEarliest: true,
	}
	err = c.Subscribe(ctx, req, func(ctx context.Context, m *client.Message) error {
		switch m.Kind {
		case client.KindEvent:
			fmt.Println(m.Event.GetSequence(), m.Event.GetMessageId(), m.Event.GetStatusUpdate().GetError().GetMessage())
		case client.KindGap:
			log.Printf("missed events (%s): resuming at %d", m.Gap.GetReason(), m.Gap.GetFirstSequence())
		case client.KindEpochChange:
			log.Printf("the log was recreated: epoch %s, was %s", m.Cursor.Epoch, m.PreviousEpoch)
		case client.KindReconnect:
			log.Printf("reconnecting in %v: %v", m.Delay, m.Err)
		}
		return nil // processed: the cursor moves to m.Cursor
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err) // permanent: a bad token, a filter outside the client's rights, ...
	}
}
