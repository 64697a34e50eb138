package mediator

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
)

// SignAuth signs an AUTH nonce: the message is exactly the 32 nonce bytes
// (§8).
func SignAuth(priv ed25519.PrivateKey, nonce []byte) []byte {
	return ed25519.Sign(priv, nonce)
}

// PoWMessage is the CREATE_CHAT signed message: nonce(32) || counter(u32 BE).
func PoWMessage(nonce []byte, counter uint32) []byte {
	m := make([]byte, len(nonce)+4)
	copy(m, nonce)
	binary.BigEndian.PutUint32(m[len(nonce):], counter)
	return m
}

// PoWOK reports whether a signature passes the CREATE_CHAT filter.
func PoWOK(sig []byte) bool { return len(sig) == 64 && sig[0] == 0 && sig[1] == 0 }

// SolvePoW runs the real client's proof-of-work loop: counter from 0 up,
// sign nonce||counterBE until sig[0] == 0 && sig[1] == 0.
func SolvePoW(priv ed25519.PrivateKey, nonce []byte) (uint32, []byte, error) {
	msg := PoWMessage(nonce, 0)
	for counter := uint32(0); ; counter++ {
		binary.BigEndian.PutUint32(msg[len(nonce):], counter)
		sig := ed25519.Sign(priv, msg)
		if PoWOK(sig) {
			return counter, sig, nil
		}
		if counter == ^uint32(0) {
			return 0, nil, errors.New("proof of work: counter exhausted")
		}
	}
}

// FailingPoW returns a counter and a valid signature over nonce||counter
// that does NOT pass the filter (for negative tests).
func FailingPoW(priv ed25519.PrivateKey, nonce []byte) (uint32, []byte) {
	for counter := uint32(0); ; counter++ {
		sig := ed25519.Sign(priv, PoWMessage(nonce, counter))
		if !PoWOK(sig) {
			return counter, sig
		}
	}
}
