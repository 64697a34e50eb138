package main

// The watch scenario: one member that only listens, for tests that act on the server from
// elsewhere (the operator's mediatorctl) and need a Go client's view of what follows. It
// talks line by line on stdin and stdout:
//
//	out: "key <pubkey hex>"                    once authenticated
//	in:  "subscribe <chat id>"                 out: "subscribed <chat id> <last message id>"
//	in:  "sync <chat id>"                      out: "message <id> <blob hex>" for every stored
//	                                           message (GET_MESSAGES_SINCE pages from id 0),
//	                                           then "synced <chat id> <count>"
//	out: "push <code> <payload hex>"           for every push, raw, in arrival order
//	out: "closed"                              when the server ends the session
//	in:  "end" (or end of input)               the scenario returns
//
// Pushes are decoded strictly as they arrive (GOT_MESSAGE must parse); the caller compares
// the raw bytes with what the protocol path produces.

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	m "mediatord/tests/go/mimirclient/mediator"
)

func (s *Scenario) RunWatch() {
	s.begin("watch: AUTH")
	u := newUser("W")
	s.open(u)
	s.must(u.cl.Auth(u.priv), "W: AUTH")
	out := s.load.Stdout
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
	}
	var parseErr error
	u.cl.SetPushHandler(func(p m.Push) bool {
		if p.Code == m.PushGotMessage {
			if _, err := m.ParseGotMessage(p.Payload); err != nil {
				mu.Lock()
				if parseErr == nil {
					parseErr = err
				}
				mu.Unlock()
			}
		}
		say("push %d %s", p.Code, hex.EncodeToString(p.Payload))
		return true
	})
	go func() {
		<-u.cl.Done()
		say("closed")
	}()
	say("key %s", hex.EncodeToString(u.pub))

	in := bufio.NewScanner(s.load.Stdin)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		switch {
		case line == "end":
			return
		case strings.HasPrefix(line, "subscribe "):
			s.begin("watch: " + line)
			chat, err := strconv.ParseInt(strings.TrimPrefix(line, "subscribe "), 10, 64)
			s.must(err, "chat id")
			last, err := u.cl.Subscribe(chat)
			s.must(err, "W: SUBSCRIBE")
			say("subscribed %d %d", chat, last)
		case strings.HasPrefix(line, "sync "):
			s.begin("watch: " + line)
			chat, err := strconv.ParseInt(strings.TrimPrefix(line, "sync "), 10, 64)
			s.must(err, "chat id")
			since, count := int64(0), 0
			for {
				page, err := u.cl.GetMessagesSince(chat, since, 500)
				s.must(err, "W: GET_MESSAGES_SINCE")
				if len(page) == 0 {
					break
				}
				for _, msg := range page {
					say("message %d %s", msg.MessageID, hex.EncodeToString(msg.Blob))
					since = msg.MessageID
					count++
				}
			}
			say("synced %d %d", chat, count)
		case line == "":
		default:
			s.failf("unknown command %q", line)
		}
		mu.Lock()
		bad := parseErr
		mu.Unlock()
		if bad != nil {
			s.failf("a GOT_MESSAGE push does not parse: %v", bad)
		}
	}
}
