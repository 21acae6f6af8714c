;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; tcp.lisp --- TCP clients and servers.

(in-package #:cl-async-ssl-test)

(def-suite tcp :in cl-async-core :description "TCP sockets and servers.")
(in-suite tcp)

(defun echo-server (&rest args &key (address "127.0.0.1") &allow-other-keys)
  "A server on a free port that echoes every read."
  (let ((args (copy-list args)))
    (remf args :address)
    (apply #'as:tcp-server address 0
           (lambda (s d) (as:write-socket-data s d))
           args)))

(defun exchange (bind host)
  (let ((got nil) (events '()))
    (with-test-loop ()
      (let ((server (echo-server :address bind)))
        (as:tcp-connect host (as:tcp-server-port server)
                        (lambda (s d)
                          (setf got (text d))
                          (as:close-socket s)
                          (as:close-tcp-server server))
                        :event-cb (lambda (e) (push e events))
                        :data "hello")))
    (is (equal "hello" got))
    (is (null events) "unexpected events: ~a" events)))

(test exchange-ipv4 (exchange "127.0.0.1" "127.0.0.1"))
(test exchange-ipv6 (exchange "::1" "::1"))
(test exchange-localhost
  "localhost may resolve to ::1 first: the client falls back to 127.0.0.1."
  (exchange "127.0.0.1" "localhost"))

(test tcp-simple-client-server
  "Upstream's test: two clients (by IP and by name) send :data \"ha\" plus
an immediate write of \"i \"; each arrives as one read of \"hai \"."
  (let ((server-reads '()) (connects 0) (replies '()))
    (with-test-loop ()
      (let* ((server (as:tcp-server nil 0
                                    (lambda (s d)
                                      (push (text d) server-reads)
                                      (as:write-socket-data s "thxlol "))
                                    :connect-cb (lambda (s) (declare (ignore s))
                                                  (incf connects))))
             (port (as:tcp-server-port server))
             (done 0))
        (dolist (host '("127.0.0.1" "localhost"))
          (let ((sock (as:tcp-connect host port
                                      (lambda (s d)
                                        (push (text d) replies)
                                        (as:close-socket s)
                                        (when (= 2 (incf done))
                                          (as:close-tcp-server server)))
                                      :data "ha")))
            (as:write-socket-data sock "i ")))))
    (is (equal '("hai " "hai ") server-reads))
    (is (= 2 connects))
    (is (equal '("thxlol " "thxlol ") replies))))

(test write-cb-after-flush
  "Two writes in one pass are one flush and one write-cb, after the data
left."
  (let ((written 0) (got ""))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (s d)
                                      (declare (ignore s))
                                      (setf got (concatenate 'string got (text d))))))
             (sock (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                                   :write-cb (lambda (s) (declare (ignore s))
                                               (incf written)))))
        (as:write-socket-data sock "abc")
        (as:write-socket-data sock "def")
        (as:with-delay (0.3)
          (as:close-socket sock)
          (as:close-tcp-server server))))
    (is (= 1 written) "one write-cb for the coalesced flush")
    (is (equal "abcdef" got))))

(test write-seq-with-offset
  "Upstream's test: :start/:end index the data."
  (let ((got ""))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d)
                                     (setf got (concatenate 'string got (text d)))
                                     (when (>= (length got) 6)
                                       (as:close-socket s))))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :connect-cb
                        (lambda (s)
                          (as:with-delay ()
                            (as:write-socket-data s "qqqabcddd" :start 3 :end 6)
                            (as:write-socket-data s "def")
                            (as:with-delay (0.2)
                              (as:close-socket s)
                              (as:close-tcp-server server)))))))
    (is (equal "abcdef" got))))

(test connect-refused-is-tcp-refused
  (let ((port (free-port)) (ev nil) (closed nil))
    (with-test-loop ()
      (as:tcp-connect "127.0.0.1" port nil
                      :event-cb (lambda (e)
                                  (setf ev e
                                        closed (as:socket-closed-p (as:socket e))))))
    (is (typep ev 'as:tcp-refused))
    (is (typep ev 'as:socket-refused))
    (is-true closed "the socket is closed before the event-cb runs")
    (is (eq :matched (handler-case (error ev) (as:socket-refused () :matched))))
    (is (search "refused" (princ-to-string ev)))))

(test connect-fail-escapes-from-event-cb
  "Upstream's tcp-connect-fail, on a port nobody listens on: the event-cb
re-signals and a handler for tcp-refused sees it."
  (let ((port (free-port)) (calls 0))
    (is (eq :refused
            (handler-case
                (as:with-event-loop ()
                  (as:tcp-connect "127.0.0.1" port nil
                                  :event-cb (lambda (e) (incf calls) (error e))
                                  :read-timeout 1))
              (as:tcp-refused () :refused)
              (as:tcp-timeout () :timeout))))
    (is (= 1 calls))))

(test dns-failure-is-dns-error
  (let ((ev nil))
    (with-test-loop ()
      (as:tcp-connect "no-such-host.invalid" 80 nil
                      :event-cb (lambda (e) (setf ev e))))
    (is (typep ev 'as:dns-error))
    (is (search "no-such-host.invalid" (princ-to-string ev)))))

(test dns-lookup-localhost
  (let ((result nil))
    (with-test-loop ()
      (as:dns-lookup "localhost" (lambda (addr family) (setf result (list addr family)))
                     :event-cb (lambda (e) (setf result e))))
    (is (member (first result) '("127.0.0.1" "::1") :test #'equal))
    (is (member (second result) (list as:+af-inet+ as:+af-inet6+)))))

(test dns-lookup-failure
  (let ((result nil))
    (with-test-loop ()
      (as:dns-lookup "nothing-here.invalid" (lambda (a f) (setf result (list a f)))
                     :event-cb (lambda (e) (setf result e))))
    (is (typep result 'as:dns-error))))

(test address-in-use-is-signalled
  (with-test-loop ()
    (let ((server (as:tcp-server "127.0.0.1" 0 nil :event-cb #'error)))
      (signals as:socket-address-in-use
        (as:tcp-server "127.0.0.1" (as:tcp-server-port server) nil
                       :event-cb #'error))
      (signals as:tcp-server-bind-error
        (as:tcp-server "127.0.0.1" (as:tcp-server-port server) nil))
      (as:close-tcp-server server))))

(test server-rejects-hostnames-and-bad-ports
  (as:with-event-loop ()
    (signals error (as:tcp-server "localhost" 0 nil))
    (signals error (as:tcp-server "127.0.0.1" 70000 nil))
    (signals error (as:tcp-connect "127.0.0.1" 0 nil))
    (signals error (as:tcp-connect "127.0.0.1" "80" nil))))

(test server-close-with-live-connections
  "Upstream's tcp-server-close: the server closes while a client is
connected; the client keeps working and the loop ends by itself."
  (let ((server-closed nil) (reply nil))
    (with-test-loop (:timeout 5)
      (let ((server (echo-server)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (setf reply (text d)) (as:close-socket s))
                        :connect-cb
                        (lambda (s)
                          (as:with-delay (0.1)
                            (as:close-tcp-server server)
                            (setf server-closed (cl-async::tcp-server-closed server))
                            (as:with-delay (0.2)
                              (as:write-socket-data s "still here")))))))
    (is-true server-closed)
    (is (equal "still here" reply))))

(test read-timeout-is-tcp-timeout
  (let ((ev nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 nil)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                        :read-timeout 0.2
                        :event-cb (lambda (e)
                                    (setf ev e)
                                    (as:close-tcp-server server)))))
    (is (typep ev 'as:tcp-timeout))
    (is (search "timed out" (princ-to-string ev)))))

(test set-socket-timeouts-again-and-clear
  (let ((ev nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0 nil))
             (s (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                                :event-cb (lambda (e) (setf ev e)))))
        (as:set-socket-timeouts s 0.1 nil)
        (as:set-socket-timeouts s -1 -1)   ; cleared again: no timeout
        (as:with-delay (0.4)
          (as:close-socket s)
          (as:close-tcp-server server)
          (signals as:streamish-closed (as:set-socket-timeouts s 1 1)))))
    (is (null ev))))

(test eof-after-queued-writes-are-flushed
  "The client writes and closes; the server replies from its read-cb.
The reply still arrives, then the server sees tcp-eof."
  (let ((server-ev nil) (client-got nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d)
                                     (as:write-socket-data s (concatenate 'string "re:" (text d))))
                                   :event-cb (lambda (e) (setf server-ev e)))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d)
                          (setf client-got (text d))
                          (as:close-socket s)
                          (as:close-tcp-server server))
                        :data "ping")))
    (is (equal "re:ping" client-got))
    (is (typep server-ev 'as:tcp-eof))))

(test peer-eof-does-not-drop-queued-writes
  "The peer half-closes right after sending; the reply written in read-cb
is delivered before our side closes (upstream dropped it)."
  (let ((reply nil) (server-ev nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d)
                                     (declare (ignore d))
                                     (as:write-socket-data s (make-string 100000 :initial-element #\r)))
                                   :event-cb (lambda (e) (setf server-ev e))))
            (buf '()))
        (let ((c (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                 (lambda (s d) (declare (ignore s)) (push d buf))
                                 :event-cb (lambda (e)
                                             (declare (ignore e))
                                             (setf reply (length (concat-octets buf)))
                                             (as:close-tcp-server server)))))
          (as:write-socket-data c "q")
          ;; close our write side only, via a graceful close after a moment
          (as:with-delay (0.05)
            (shutdown-write (cl-async-ffi:tcp-fd (as:socket-c c)))))))
    (is (eql 100000 reply))
    (is (typep server-ev 'as:tcp-eof))))

(test one-mib-echo-intact
  (let* ((data (random-octets (* 1024 1024)))
         (got '()) (total 0))
    (with-test-loop ()
      (let ((server (echo-server)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d)
                          (push d got)
                          (when (>= (incf total (length d)) (length data))
                            (as:close-socket s)
                            (as:close-tcp-server server)))
                        :data data)))
    (is (equalp data (concat-octets (reverse got))))))

(test two-hundred-concurrent-connections
  (let ((ok 0) (n 200) (stats nil))
    (with-test-loop (:timeout 30)
      (let* ((server (echo-server))
             (port (as:tcp-server-port server))
             (left n))
        (dotimes (i n)
          (let ((msg (format nil "client ~d" i)))
            (as:tcp-connect "127.0.0.1" port
                            (lambda (s d)
                              (when (equal msg (text d)) (incf ok))
                              (as:close-socket s)
                              (when (zerop (decf left))
                                (as:close-tcp-server server)
                                (as:with-delay (0.2) (setf stats (as:stats)))))
                            :data msg)))))
    (is (= n ok))
    (is (= 0 (getf stats :outgoing-tcp-connections)))
    (is (= 0 (getf stats :incoming-tcp-connections)))))

(defun close-inside (where)
  "Closes the client from inside WHERE (:read :write :connect :event)."
  (let ((closed nil) (events '()))
    (with-test-loop (:timeout 5)
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (s d)
                                      (as:write-socket-data s d)
                                      (when (eq where :event) (as:close-socket s)))))
             (client nil))
        (flet ((done (s)
                 (as:close-socket s)
                 (as:close-socket s)  ; twice: harmless
                 (setf closed (as:socket-closed-p s))
                 (as:close-tcp-server server)))
          (setf client
                (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore d))
                                  (when (eq where :read) (done s)))
                                :write-cb (lambda (s) (when (eq where :write) (done s)))
                                :connect-cb (lambda (s) (when (eq where :connect) (done s)))
                                :event-cb (lambda (e)
                                            (push e events)
                                            (when (eq where :event) (done (as:socket e))))
                                :data "x")))))
    (is-true closed)
    (when (eq where :event)
      (is (typep (first events) 'as:tcp-eof)))))

(test close-inside-read-cb (close-inside :read))
(test close-inside-write-cb (close-inside :write))
(test close-inside-connect-cb (close-inside :connect))
(test close-inside-event-cb (close-inside :event))

(test write-to-closed-socket-signals
  (with-test-loop ()
    (let* ((server (as:tcp-server "127.0.0.1" 0 nil))
           (s (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil)))
      (as:close-socket s)
      (is-true (as:socket-closed-p s))
      (signals as:socket-closed (as:write-socket-data s "nope"))
      (signals as:streamish-closed (as:write-socket-data s "nope"))
      (as:close-socket s)
      (as:close-tcp-server server))))

(test disable-and-enable-socket
  "Reading pauses while disabled; data sent meanwhile arrives on enable."
  (let ((reads '()) (seen-while-paused nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (s d) (declare (ignore d)) s)
                                    :connect-cb
                                    (lambda (s)
                                      (as:write-socket-data s "one")
                                      (as:with-delay (0.1) (as:write-socket-data s "two"))
                                      (as:with-delay (0.5) (as:close-socket s)))))
             (c nil))
        (setf c (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d)
                                  (push (text d) reads)
                                  (when (equal (text d) "one")
                                    (as:disable-socket s :read t)
                                    (as:with-delay (0.3)
                                      (setf seen-while-paused (copy-list reads))
                                      (as:enable-socket s :read t))))
                                :event-cb (lambda (e) (declare (ignore e))
                                            (as:close-tcp-server server))))
        (as:add-event-loop-exit-callback (lambda () (as:close-socket c)))))
    (is (equal '("one") seen-while-paused))
    (is (equal '("one" "two") (reverse reads)))))

(test socket-data-and-addresses
  (let ((peer nil) (data nil))
    (with-test-loop ()
      (let* ((server (echo-server))
             (c (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore d))
                                  (setf peer (multiple-value-list (as:socket-peer-address s))
                                        data (as:socket-data s))
                                  (as:close-socket s)
                                  (as:close-tcp-server server))
                                :data "x")))
        (setf (as:socket-data c) :mine)))
    (is (equal "127.0.0.1" (first peer)))
    (is (integerp (second peer)))
    (is (eq :mine data))))

(test stats-counters-never-negative
  (let ((seen '()))
    (with-test-loop ()
      (let* ((server (echo-server))
             (c (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore d))
                                  (push (as:stats) seen)
                                  (as:close-socket s)
                                  (as:close-socket s)
                                  (as:close-tcp-server server)
                                  (as:with-delay (0.1) (push (as:stats) seen)))
                                :data "x")))
        (declare (ignore c))))
    (let ((during (second seen)) (after (first seen)))
      (is (= 1 (getf during :outgoing-tcp-connections)))
      (is (= 1 (getf during :incoming-tcp-connections)))
      (is (= 0 (getf after :outgoing-tcp-connections)))
      (is (= 0 (getf after :incoming-tcp-connections))))))

(test positional-event-cb-is-accepted
  (let ((ev nil) (port (free-port)))
    (with-test-loop ()
      (handler-bind ((warning #'muffle-warning))
        (as:tcp-connect "127.0.0.1" port nil (lambda (e) (setf ev e)))))
    (is (typep ev 'as:tcp-refused))))

(test server-fd-option
  "A server can listen on a socket made elsewhere (:fd)."
  (let* ((sock (make-instance 'sb-bsd-sockets:inet-socket :type :stream :protocol :tcp))
         (got nil))
    ;; The server takes the fd over (and closes it): the Lisp socket object
    ;; must not close it again from its finalizer once the number is reused.
    (sb-ext:cancel-finalization sock)
    (setf (sb-bsd-sockets:sockopt-reuse-address sock) t)
    (sb-bsd-sockets:socket-bind sock #(127 0 0 1) 0)
    (let ((port (nth-value 1 (sb-bsd-sockets:socket-name sock))))
      (with-test-loop ()
        (let ((server (as:tcp-server nil nil (lambda (s d) (as:write-socket-data s d))
                                     :fd (sb-bsd-sockets:socket-file-descriptor sock))))
          (as:tcp-connect "127.0.0.1" port
                          (lambda (s d) (setf got (text d))
                            (as:close-socket s) (as:close-tcp-server server))
                          :data "via fd"))))
    (is (equal "via fd" got))))

(test a-system-error-ends-one-connection-and-the-loop-goes-on
  ;; What the C library hands up when the system fails one connection
  ;; (EPIPE on a write, ECONNRESET on a read, ENOBUFS: each is made to
  ;; happen in C by make torture, c/uv-torture.c): here the Lisp side is
  ;; handed those codes for one client while another keeps echoing.
  (dolist (case '((-32 as:streamish-broken-pipe "EPIPE")
                  (-104 as:tcp-reset "ECONNRESET")
                  (-105 as:tcp-error "ENOBUFS")))
    (destructuring-bind (code type name) case
      (let ((events '()) (other nil))
        (with-test-loop ()
          (let* ((server (echo-server))
                 (port (as:tcp-server-port server))
                 (victim (as:tcp-connect "127.0.0.1" port
                                         (lambda (s d) (declare (ignore s d)))
                                         :event-cb (lambda (e) (push e events)))))
            (as:tcp-connect "127.0.0.1" port
                            (lambda (s d)
                              (setf other (text d))
                              (as:close-socket s)
                              (as:close-tcp-server server))
                            :connect-cb
                            (lambda (s)
                              (cl-async::%on-error (cl-async::socket-id victim) code)
                              (as:write-socket-data s "still here")))))
        (is (equal "still here" other) "~a: the other connection" name)
        (is (= 1 (length events)) "~a: events ~a" name events)
        (is (typep (first events) type) "~a: ~a" name (first events))
        (is (eql code (as:event-errcode (first events)))
            "~a: ~a" name (first events))))))

;;;# Read buffers (:read-buffer)

(defun stream-many-reads (total &rest client-args)
  "Sends TOTAL random bytes through an echo server with :read-buffer :reuse
(writing back the vector it is given) to a client made with CLIENT-ARGS,
whose read-cb records every vector it gets and a copy of its contents;
returns the data, the copies and the vectors, in order."
  (let ((data (random-octets total 11)) (copies '()) (vectors '()) (got 0))
    (with-test-loop ()
      (let ((server (echo-server :read-buffer :reuse)))
        (apply #'as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
               (lambda (s d)
                 (push d vectors)
                 (push (copy-seq d) copies)
                 (when (>= (incf got (length d)) total)
                   (as:close-socket s)
                   (as:close-tcp-server server)))
               :data data client-args)))
    (values data (reverse copies) (reverse vectors))))

(test reused-read-buffer-keeps-data-intact
  "With :read-buffer :reuse on both sides, 8 MiB echoed in many reads
arrive intact, each read-cb given the loop's one reused vector (a vector
with a fill pointer at the read's length)."
  (multiple-value-bind (data copies vectors)
      (stream-many-reads (* 8 1024 1024) :read-buffer :reuse)
    (is (equalp data (concat-octets copies)))
    (is (> (length vectors) 8) "~d reads only" (length vectors))
    (is (every (lambda (v) (eq v (first vectors))) vectors))
    (is (typep (first vectors) '(vector (unsigned-byte 8))))
    (is (array-has-fill-pointer-p (first vectors)))))

(test fresh-read-vectors-survive-the-callback
  "By default (and with :read-buffer :fresh) every read is a fresh simple
octet vector that keeps its contents after the callback returned."
  (dolist (args '(() (:read-buffer :fresh) (:read-buffer nil)))
    (multiple-value-bind (data copies vectors)
        (apply #'stream-many-reads (* 2 1024 1024) args)
      (is (equalp data (concat-octets vectors)) "kept vectors changed (~s)" args)
      (is (equalp data (concat-octets copies)))
      (is (every (lambda (v) (typep v '(simple-array (unsigned-byte 8) (*))))
                 vectors))
      (is (= (length vectors)
             (length (remove-duplicates vectors :test #'eq)))))))

(test write-socket-data-takes-octet-vectors-that-are-not-simple
  "write-socket-data sends a vector with a fill pointer (up to it) and a
displaced vector (its window) as they are."
  (let* ((storage (random-octets 1000 3))
         (filled (make-array 1000 :element-type '(unsigned-byte 8)
                                  :fill-pointer 300 :initial-contents storage))
         (window (make-array 200 :element-type '(unsigned-byte 8)
                                 :displaced-to storage :displaced-index-offset 500))
         (want (concatenate '(vector (unsigned-byte 8))
                            (subseq storage 0 300) (subseq storage 500 700)
                            (subseq storage 510 520)))
         (got '()) (total 0))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (s d)
                                      (push (copy-seq d) got)
                                      (when (>= (incf total (length d)) (length want))
                                        (as:close-socket s)))
                                    :read-buffer :reuse))
             (sock (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil)))
        (as:write-socket-data sock filled)
        (as:write-socket-data sock window)
        (as:write-socket-data sock window :start 10 :end 20)
        (as:with-delay (0.5)
          (as:close-socket sock)
          (as:close-tcp-server server))))
    (is (equalp want (concat-octets (reverse got))))))

(test read-buffer-takes-fresh-or-reuse
  "A bad :read-buffer signals an ARGUMENT-ERROR naming what it takes, on
tcp-connect and tcp-server."
  (with-test-loop ()
    (dolist (call (list (lambda () (as:tcp-connect "127.0.0.1" 1 nil :read-buffer :bogus))
                        (lambda () (as:tcp-server "127.0.0.1" 0 nil :read-buffer t))))
      (let ((e (handler-case (progn (funcall call) nil)
                 (as:argument-error (e) e))))
        (is (typep e 'as:argument-error))
        (when e
          (is (eq :read-buffer (as:argument-error-argument e)))
          (is (search ":reuse" (princ-to-string e)))
          (is (search ":fresh" (princ-to-string e))))))))
