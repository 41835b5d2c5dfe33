package main

// The host's data sockets. By default they speak the SP-over-IPC wire format
// directly with buffered reads and writes: mangos makes three read system calls per
// received frame and one write per sent frame, which puts a per-frame cost on the host
// close to the plugin's own, and the host must not be what a figure measures. The
// bytes on the wire are the same, so the plugin under test is an ordinary pynng peer
// either way; -mangos switches back to mangos sockets to compare.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"go.nanomsg.org/mangos/v3"
)

// SP protocol numbers, as each side announces itself in the connection header.
const (
	protoReq  = 0x30
	protoRep  = 0x31
	protoPush = 0x50
	protoPull = 0x51
)

// dataSocket is what a scenario needs from one data socket.
type dataSocket interface {
	// Recv returns the next frame's payload (for REP, with its 4-byte request id).
	Recv() ([]byte, error)
	// Send sends one frame; with flush false a buffered socket may hold it back.
	Send(frame []byte, flush bool) error
	Close()
}

var useMangos bool

type mangosSocket struct{ s mangos.Socket }

func (m mangosSocket) Recv() ([]byte, error)       { return m.s.Recv() }
func (m mangosSocket) Send(f []byte, _ bool) error { return m.s.Send(f) }
func (m mangosSocket) Close()                      { _ = m.s.Close() }

// rawSocket is one SP connection over a Unix socket, read and written through buffers.
type rawSocket struct {
	listener *net.UnixListener
	conns    chan net.Conn
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	self     uint16
	peer     uint16
	deadline time.Duration
	path     string
}

var errNoPeer = errors.New("no peer connected")

// rawListen listens at an ipc:// URL and accepts the peer's connection in the background.
func rawListen(url string, self, peer uint16, deadline time.Duration) *rawSocket {
	path := strings.TrimPrefix(url, "ipc://")
	_ = os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		die("listen %s: %v", url, err)
	}
	s := &rawSocket{listener: l, conns: make(chan net.Conn, 4), self: self, peer: peer,
		deadline: deadline, path: path}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(s.conns)
				return
			}
			// Answer the SP header at once: a pynng dial blocks until it has it.
			if err := spHandshake(c, self, peer); err != nil {
				_ = c.Close()
				continue
			}
			s.conns <- c
		}
	}()
	return s
}

// rawDial connects to a peer listening at an ipc:// URL.
func rawDial(url string, self, peer uint16) *rawSocket {
	c, err := net.Dial("unix", strings.TrimPrefix(url, "ipc://"))
	if err != nil {
		die("dial %s: %v", url, err)
	}
	s := &rawSocket{self: self, peer: peer, deadline: 5 * time.Second}
	if err := spHandshake(c, self, peer); err != nil {
		die("dial %s: %v", url, err)
	}
	s.attach(c)
	return s
}

// spHandshake exchanges the 8-byte SP connection headers and checks the peer's protocol.
func spHandshake(c net.Conn, self, peer uint16) error {
	header := []byte{0, 'S', 'P', 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(header[4:], self)
	if _, err := c.Write(header); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, header); err != nil {
		return err
	}
	if header[1] != 'S' || header[2] != 'P' || binary.BigEndian.Uint16(header[4:]) != peer {
		return errors.New("the peer is not the expected SP protocol")
	}
	return nil
}

func (s *rawSocket) attach(c net.Conn) {
	s.conn, s.r, s.w = c, bufio.NewReaderSize(c, 256<<10), bufio.NewWriterSize(c, 64<<10)
}

// connected waits, up to the deadline, for the peer to connect.
func (s *rawSocket) connected() error {
	if s.conn != nil {
		return nil
	}
	select {
	case c, ok := <-s.conns:
		if !ok {
			return errNoPeer
		}
		s.attach(c)
		return nil
	case <-time.After(s.deadline):
		return mangos.ErrRecvTimeout
	}
}

func (s *rawSocket) Recv() ([]byte, error) {
	if err := s.connected(); err != nil {
		return nil, err
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(s.deadline))
	var head [9]byte
	if _, err := io.ReadFull(s.r, head[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, mangos.ErrRecvTimeout
		}
		return nil, mangos.ErrClosed
	}
	body := make([]byte, binary.BigEndian.Uint64(head[1:]))
	if _, err := io.ReadFull(s.r, body); err != nil {
		return nil, mangos.ErrClosed
	}
	return body, nil
}

func (s *rawSocket) Send(frame []byte, flush bool) error {
	if err := s.connected(); err != nil {
		return err
	}
	var head [9]byte
	head[0] = 1
	binary.BigEndian.PutUint64(head[1:], uint64(len(frame)))
	_, _ = s.w.Write(head[:])
	_, _ = s.w.Write(frame)
	if flush {
		return s.w.Flush()
	}
	return nil
}

func (s *rawSocket) Close() {
	if s.w != nil {
		_ = s.w.Flush()
	}
	if s.listener != nil {
		_ = s.listener.Close()
		_ = os.Remove(s.path)
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
	if s.conns != nil {
		for c := range s.conns {
			_ = c.Close()
		}
	}
}

// dataPull listens for a plugin's PUSH (source tuples, sink acks).
func dataPull(url string, deadline time.Duration) dataSocket {
	if useMangos {
		return mangosSocket{newPull(url, deadline)}
	}
	return rawListen(url, protoPull, protoPush, deadline)
}

// dataPush dials a sink's PULL.
func dataPush(url string) dataSocket {
	if useMangos {
		return mangosSocket{newPush(url)}
	}
	return rawDial(url, protoPush, protoPull)
}

// funcRep listens for a function's REQ socket. Received frames start with the request
// id, and a reply must start with the same 4 bytes.
func funcRep(url string) dataSocket {
	if useMangos {
		return &mangosRep{newRep(url)}
	}
	return rawListen(url, protoRep, protoReq, 5*time.Second)
}

// mangosRep makes a mangos REP socket look like the raw one: the request id travels
// with the frame (mangos keeps it in the message header).
type mangosRep struct{ s mangos.Socket }

func (m *mangosRep) Recv() ([]byte, error) {
	body, err := m.s.Recv()
	if err != nil {
		return nil, err
	}
	// mangos keeps the request id to itself; four placeholder bytes keep the layout.
	return append([]byte{0, 0, 0, 0}, body...), nil
}

func (m *mangosRep) Send(frame []byte, _ bool) error { return m.s.Send(frame[4:]) }
func (m *mangosRep) Close()                          { _ = m.s.Close() }
