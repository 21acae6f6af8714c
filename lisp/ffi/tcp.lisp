;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; tcp.lisp --- TCP connections and servers: connect, listen, write,
;;;; read start/stop, timeouts, close, addresses, and starting TLS on a
;;;; connection.

(in-package #:cl-async-ffi)

;;;# TCP

(defconstant +write-now+ 1 "CASL_WRITE_NOW.")
(defconstant +write-notify+ 2 "CASL_WRITE_NOTIFY.")

(defc %tcp-connect "casl_tcp_connect" :int
  (loop :pointer) (id :int64) (host nullable-string) (port :int) (out :pointer))
(defc %server-listen "casl_server_listen" :int
  (loop :pointer) (id :int64) (addr nullable-string) (port :int) (backlog :int)
  (flags :int) (out :pointer))

(defconstant +listen-reuseport+ 1 "CASL_LISTEN_REUSEPORT.")
(defc %server-open-fd "casl_server_open_fd" :int
  (loop :pointer) (id :int64) (fd :int) (backlog :int) (out :pointer))
(defc server-port "casl_server_port" :int (server :pointer))
(defc server-set-tls "casl_server_set_tls" :int
  (server :pointer) (ctx :pointer) (handshake-ms :uint64))
(defc server-close "casl_server_close" :void (server :pointer))
(defc %tcp-write "casl_tcp_write" :int
  (conn :pointer) (buf :pointer) (len :size) (flags :int))
(defc tcp-write-queue-size "casl_tcp_write_queue_size" :size (conn :pointer))
(defc tcp-read-stop "casl_tcp_read_stop" :int (conn :pointer))
(defc tcp-read-start "casl_tcp_read_start" :int (conn :pointer))
(defc tcp-set-timeouts "casl_tcp_set_timeouts" :int
  (conn :pointer) (read-ms :uint64) (write-ms :uint64))
(defc tcp-close "casl_tcp_close" :void (conn :pointer) (force :boolean))
(defc tcp-error-text "casl_tcp_error" :string (conn :pointer))
(defc %tcp-peer-address "casl_tcp_peer_address" :int
  (conn :pointer) (buf :pointer) (len :size) (port :pointer))
(defc %tcp-local-address "casl_tcp_local_address" :int
  (conn :pointer) (buf :pointer) (len :size) (port :pointer))
(defc tcp-fd "casl_tcp_fd" :int (conn :pointer))
(defc %tcp-connected "casl_tcp_connected" :int (conn :pointer))
(defc tcp-start-tls "casl_tcp_start_tls" :int
  (conn :pointer) (ctx :pointer) (server :boolean) (name nullable-string)
  (session-key nullable-string) (handshake-ms :uint64))
(defc tcp-tls "casl_tcp_tls" :pointer (conn :pointer))
(defc tcp-sni-select "casl_tcp_sni_select" :int (conn :pointer) (ctx :pointer))

(defun tcp-connect (loop id host port)
  "Starts connecting to HOST:PORT: (values connection-pointer code)."
  (with-out-pointer (out) (%tcp-connect loop id host port out)))

(defun server-listen (loop id address port backlog &optional (flags 0))
  "Listens on ADDRESS:PORT (FLAGS: +listen-reuseport+ or 0): (values
server-pointer code)."
  (with-out-pointer (out) (%server-listen loop id address port backlog flags out)))

(defun server-open-fd (loop id fd backlog)
  "Listens on the bound socket FD: (values server-pointer code)."
  (with-out-pointer (out) (%server-open-fd loop id fd backlog out)))

(defun tcp-write (conn octets start end flags)
  "Queues OCTETS[START, END) (a simple octet vector, copied) on CONN."
  (declare (type (simple-array (unsigned-byte 8) (*)) octets)
           (type fixnum start end flags))
  (cffi:with-pointer-to-vector-data (p octets)
    (%tcp-write conn (cffi:inc-pointer p start) (- end start) flags)))

(defun address-of (fn conn)
  (cffi:with-foreign-objects ((buf :char 64) (port :int))
    (let ((rc (funcall fn conn buf 64 port)))
      (if (zerop rc)
          (values (cffi:foreign-string-to-lisp buf) (cffi:mem-ref port :int))
          (values nil rc)))))

(defun tcp-peer-address (conn)
  "The peer's address and port, or nil and a code."
  (address-of #'%tcp-peer-address conn))

(defun tcp-local-address (conn)
  "The local address and port, or nil and a code."
  (address-of #'%tcp-local-address conn))

(defun tcp-connected-p (conn)
  "True once CONN is connected (and its TLS handshake, if any, is done)."
  (/= 0 (%tcp-connected conn)))

;;;# Pipes (unix domain sockets); the tcp-* functions above work on them

(defc %pipe-connect "casl_pipe_connect" :int
  (loop :pointer) (id :int64) (path nullable-string) (out :pointer))
(defc %pipe-listen "casl_pipe_listen" :int
  (loop :pointer) (id :int64) (path nullable-string) (backlog :int)
  (out :pointer))
(defc %pipe-open-fd "casl_pipe_open_fd" :int
  (loop :pointer) (id :int64) (fd :int) (backlog :int) (out :pointer))

(defun pipe-connect (loop id path)
  "Starts connecting to the unix socket PATH: (values connection-pointer
code)."
  (with-out-pointer (out) (%pipe-connect loop id path out)))

(defun pipe-listen (loop id path backlog)
  "Listens on a new unix socket at PATH: (values server-pointer code)."
  (with-out-pointer (out) (%pipe-listen loop id path backlog out)))

(defun pipe-open-fd (loop id fd backlog)
  "Listens on the bound unix socket FD: (values server-pointer code)."
  (with-out-pointer (out) (%pipe-open-fd loop id fd backlog out)))
