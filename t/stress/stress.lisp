;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; stress.lisp --- hostile peers, leaks and concurrency against a default
;;;; tcp-ssl-server running in its own process (t/stress/stress-server.lisp).
;;;;
;;;; Run by t/stress/run-stress.sh (make stress).  CASL_STRESS_SIZE is
;;;; "full" (the issue's counts) or "short" (CI).  Every phase prints PASS
;;;; or FAIL with its figures; the exit status is 0 only if all passed.
;;;; A good client (tlsload, ping-pong over one connection) runs during
;;;; the hostile phases and must see no error and no round trip over 1 s.
;;;; Then two worker processes share a port and one is killed with SIGKILL
;;;; under load, and a soak (t/stress/soak.lisp) runs 4 loops on 4
;;;; threads of one process for 10 minutes (short: 40 s).

(require :asdf)
(require :sb-posix)
(push (uiop:getcwd) asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-stress (:use #:cl))
(in-package #:cl-async-ssl-stress)
(load (merge-pathnames "common.lisp" *load-truename*))

(defparameter *full* (equal (uiop:getenv "CASL_STRESS_SIZE") "full"))
(defparameter *certs* (uiop:getenv "CASL_STRESS_CERTS"))
(defparameter *tlsload* (uiop:getenv "CASL_STRESS_TLSLOAD"))
(defparameter *seed* (parse-integer (or (uiop:getenv "CASL_STRESS_SEED") "20261129")))
(defparameter *handshake-timeout* 2)

(defun size (short full) (if *full* full short))
(defun cert (name) (format nil "~a/~a" *certs* name))

(defvar *failures* 0)
(defvar *summary* '())

(defun report (ok name fmt &rest args)
  (let ((text (apply #'format nil fmt args)))
    (format t "~&~:[FAIL~;PASS~] ~a: ~a~%" ok name text)
    (finish-output)
    (push (list name ok text) *summary*)
    (unless ok (incf *failures*))))

(defun now () (/ (get-internal-real-time) internal-time-units-per-second))

;;;# The server process

(defvar *server* nil)
(defvar *server-pid* nil)
(defvar *port* nil)

(defun launch-server (&key reuse-port (log nil))
  "Starts t/stress/stress-server.lisp (listening with :reuse-port on port
REUSE-PORT when given, 0 for any free one) and waits up to 60 s for it to
listen.  Returns (values process pid port); the process is killed and an
error signalled if it never told its port."
  (let ((port-file (format nil "~a/port-~a" *certs* (random 1000000 (make-random-state t)))))
    (let ((process
            (uiop:launch-program
             (append (list "env" (format nil "CASL_STRESS_CERTS=~a" *certs*)
                           (format nil "CASL_STRESS_PORT_FILE=~a" port-file)
                           (format nil "CASL_STRESS_HANDSHAKE_TIMEOUT=~a" *handshake-timeout*))
                     (and reuse-port (list (format nil "CASL_STRESS_REUSE_PORT=~a" reuse-port)))
                     (list "sbcl" "--noinform" "--non-interactive" "--load"
                           "t/stress/stress-server.lisp"))
             :output log :if-output-exists :supersede :error-output (and log :output))))
      (loop :repeat 600
            :until (and (probe-file port-file)
                        (with-open-file (f port-file) (read-line f nil)))
            :while (uiop:process-alive-p process)
            :do (sleep 0.1))
      (let ((port (and (probe-file port-file)
                       (with-open-file (f port-file) (parse-integer (read-line f nil "") :junk-allowed t)))))
        (when (probe-file port-file) (delete-file port-file))
        (unless port
          (when (uiop:process-alive-p process) (uiop:terminate-process process :urgent t))
          (uiop:wait-process process)
          (error "the stress server did not start"))
        (values process (uiop:process-info-pid process) port)))))

(defun start-server ()
  (multiple-value-setq (*server* *server-pid* *port*)
    (launch-server :log "/tmp/casl-stress-server.log"))
  (format t "~&server pid ~a on port ~a~%" *server-pid* *port*))

(defun stop-server ()
  (when (and *server* (uiop:process-alive-p *server*))
    (uiop:terminate-process *server* :urgent t)
    (uiop:wait-process *server*)))

(defun server-alive-p () (uiop:process-alive-p *server*))

(defun rss-kb ()
  "The server's resident set size in KiB."
  (rss-kib *server-pid*))

;;;# Driving clients

(defmacro with-loop ((seconds) &body body)
  "Runs BODY in an event loop stopped after SECONDS at the latest."
  `(as:with-event-loop ()
     (as:unref (as:delay #'as:exit-event-loop :time ,seconds))
     ,@body))

(defun server-stats (&optional (command "STATS"))
  "The server's STATS plist, or the answer to COMMAND (asked over TLS)."
  (let ((text "") (result nil))
    (with-loop (10)
      (as-ssl:tcp-ssl-connect "127.0.0.1" *port*
                              (lambda (s d)
                                (setf text (concatenate 'string text
                                                        (babel:octets-to-string d)))
                                (when (find #\Newline text)
                                  (setf result (let ((*read-eval* nil))
                                                 (read-from-string text)))
                                  (as:close-socket s)))
                              :ca-file (cert "ca.pem") :data (format nil "~a~%" command)))
    result))

(defun server-memory ()
  "The server's memory after a full GC: (:lisp-heap-kib :malloc-kib :rss-kib)."
  (server-stats "MEMORY"))

(defun random-octets (n state)
  (let ((v (make-array n :element-type '(unsigned-byte 8))))
    (dotimes (i n v) (setf (aref v i) (random 256 state)))))

(defun hostile-clients (n make-data &key (deadline 15) after-connect)
  "Opens N raw TCP connections to the server, each sending (funcall
MAKE-DATA i) (nil: nothing); AFTER-CONNECT, if given, is called with the
socket once connected.  Returns (values closed-by-server max-seconds):
how many connections the server ended, and the longest time it took."
  (let ((closed 0) (max-time 0) (start (now)))
    (with-loop (deadline)
      (dotimes (i n)
        (let ((data (funcall make-data i)))
          (as:tcp-connect "127.0.0.1" *port*
                          (lambda (s d) (declare (ignore s d)))
                          :data data
                          :connect-cb (lambda (s) (when after-connect (funcall after-connect s)))
                          :event-cb (lambda (e)
                                      (when (typep e '(or as:socket-eof as:socket-reset
                                                       as:streamish-broken-pipe))
                                        (incf closed)
                                        (setf max-time (max max-time (- (now) start))))))))
      (as:with-interval (0.1)
        (when (>= closed n) (as:exit-event-loop))))
    (values closed (float max-time))))

(defvar *client-hello* nil)

(defun capture-client-hello ()
  "A real TLS 1.3 ClientHello, as openssl s_client sends it."
  (with-loop (10)
    (let* ((server nil)
           (process nil))
      (setf server (as:tcp-server "127.0.0.1" 0
                                  (lambda (s d)
                                    (setf *client-hello* d)
                                    (as:close-socket s)
                                    (as:close-tcp-server server)
                                    (uiop:terminate-process process :urgent t))))
      (setf process (uiop:launch-program
                     (list "openssl" "s_client" "-connect"
                           (format nil "127.0.0.1:~a" (as:tcp-server-port server)))
                     :input :stream :output nil :error-output nil))))
  (assert *client-hello*))

(defun sslv3-client-hello ()
  "An SSLv3 ClientHello (record and hello version 3.0, no extensions)."
  (let* ((body (concatenate '(vector (unsigned-byte 8))
                            #(3 0) (make-array 32 :initial-element 7) #(0)
                            #(0 4 0 #x2f 0 #x35) #(1 0)))
         (hs (concatenate '(vector (unsigned-byte 8))
                          (vector 1 0 (ash (length body) -8) (logand (length body) 255))
                          body)))
    (coerce (concatenate '(vector (unsigned-byte 8))
                         (vector 22 3 0 (ash (length hs) -8) (logand (length hs) 255))
                         hs)
            '(simple-array (unsigned-byte 8) (*)))))

;;;# The good client

(defun start-good-client (seconds)
  (uiop:launch-program
   (list *tlsload* "latency" "--port" (princ-to-string *port*) "--conns" "1"
         "--size" "64" "--duration" (princ-to-string seconds) "--warmup" "0"
         "--timeout" "5")
   :output :stream :error-output (good-client-log) :if-error-output-exists :supersede))

(defun good-client-log () (format nil "~a/good-client.err" *certs*))

(defun good-client-result (process)
  (let* ((out (uiop:slurp-stream-string (uiop:process-info-output process)))
         (line (find-if (lambda (l) (search "RESULT" l))
                        (uiop:split-string out :separator '(#\Newline)))))
    (uiop:wait-process process)
    (and line
         (loop :for field :in (uiop:split-string line :separator '(#\Space))
               :for eq := (position #\= field)
               :when eq :collect (intern (string-upcase (subseq field 0 eq)) :keyword)
               :and :collect (subseq field (1+ eq))))))

;;;# Phases

(defun phase-silent-clients ()
  "Clients that connect and never speak are all cut off by the handshake
timeout, and the server's live memory (Lisp heap after a full GC, bytes
held from malloc) returns to where it was.  RSS is reported too: SBCL and
malloc keep freed memory for reuse, so it need not shrink."
  (let* ((n (size 200 1000))
         (before (server-memory)))
    (multiple-value-bind (closed secs) (hostile-clients n (constantly nil)
                                                        :deadline (+ 15 *handshake-timeout*))
      (sleep 1)
      (let* ((after (server-memory))
             (heap (- (getf after :lisp-heap-kib) (getf before :lisp-heap-kib)))
             (mall (- (getf after :malloc-kib) (getf before :malloc-kib))))
        (report (and (= closed n) (< secs (+ *handshake-timeout* 5))
                     (< heap 2048) (< mall 1024))
                "silent clients"
                "~d clients that never spoke: ~d cut off by the ~as handshake timeout ~
                 (last after ~,1fs); server memory before/after (KiB): Lisp heap ~d/~d ~
                 (~@d), malloc in use ~d/~d (~@d), RSS ~d/~d"
                n closed *handshake-timeout* secs
                (getf before :lisp-heap-kib) (getf after :lisp-heap-kib) heap
                (getf before :malloc-kib) (getf after :malloc-kib) mall
                (getf before :rss-kib) (getf after :rss-kib))))))

(defun phase-truncated-hello ()
  (let* ((n (size 20 100))
         (half (subseq *client-hello* 0 (floor (length *client-hello*) 2))))
    (multiple-value-bind (closed secs) (hostile-clients n (constantly half))
      (report (= closed n) "truncated ClientHello"
              "~d clients sent half a ClientHello and stalled: ~d closed (last after ~,1fs)"
              n closed secs))))

(defun phase-random-bytes ()
  (let* ((n (size 50 200)) (state (sb-ext:seed-random-state *seed*)))
    (multiple-value-bind (closed secs)
        (hostile-clients n (lambda (i) (random-octets (+ 1 (random 4096 state) i) state)))
      (report (= closed n) "random bytes"
              "~d clients sent random bytes: ~d closed (last after ~,1fs)" n closed secs))))

(defun phase-hello-then-garbage ()
  (let* ((n (size 20 100)) (state (sb-ext:seed-random-state (1+ *seed*))))
    (multiple-value-bind (closed secs)
        (hostile-clients n (lambda (i) (declare (ignore i))
                             (concatenate '(vector (unsigned-byte 8))
                                          *client-hello* (random-octets 2000 state))))
      (report (= closed n) "ClientHello then garbage"
              "~d clients sent a valid ClientHello then garbage: ~d closed (last after ~,1fs)"
              n closed secs))))

(defun phase-rst-mid-handshake ()
  (let ((n (size 50 200)) (before-ok (server-alive-p)))
    (with-loop (15)
      (dotimes (i n)
        (as:tcp-connect "127.0.0.1" *port* nil
                        :data *client-hello*
                        :connect-cb (lambda (s) (as:with-delay (0.01) (rst s)))
                        :event-cb (lambda (e) (declare (ignore e))))))
    (sleep 0.5)
    (report (and before-ok (server-alive-p)) "RST mid-handshake"
            "~d clients reset the connection after their ClientHello; server alive" n)))

(defun phase-rst-mid-transfer ()
  (let ((n (size 10 50)) (resets 0))
    (with-loop (30)
      (dotimes (i n)
        (as-ssl:tcp-ssl-connect "127.0.0.1" *port*
                                (lambda (s d) (declare (ignore d))
                                  (unless (as:socket-closed-p s)
                                    (incf resets)
                                    (rst s)))
                                :ca-file (cert "ca.pem")
                                :data (format nil "BULK 8~%")
                                :event-cb (lambda (e) (declare (ignore e))))))
    (sleep 0.5)
    (report (and (= resets n) (server-alive-p)) "RST mid-transfer"
            "~d clients reset the connection while receiving 8 MiB: ~d resets, server alive"
            n resets)))

(defun phase-never-reading-client ()
  "The server writes MIB MiB to a client that stops reading: its write
queue stays bounded (it waits for the write-cb), and so does its memory;
once the client reads again, every byte arrives."
  (let* ((mib (size 16 64))
         (total (* mib 1024 1024))
         (received 0) (bad 0) (max-rss 0) (max-queue 0) (before (rss-kb))
         (paused-at nil))
    (with-loop (120)
      (as-ssl:tcp-ssl-connect
       "127.0.0.1" *port*
       (lambda (s d)
         (loop :for b :across d
               :for i :from received
               :unless (= b (mod i 251)) :do (incf bad))
         (incf received (length d))
         (unless paused-at
           (setf paused-at (now))
           (as:disable-socket s :read t)
           (as:with-delay (3)
             ;; while blocked: the server's queue and memory
             (setf max-rss (rss-kb))
             (as-ssl:tcp-ssl-connect
              "127.0.0.1" *port*
              (lambda (q d)
                (let ((st (getf (let ((*read-eval* nil))
                                  (read-from-string (babel:octets-to-string d)))
                                :stats)))
                  (setf max-queue (getf st :write-queue-bytes)))
                (as:close-socket q)
                (as:enable-socket s :read t))
              :ca-file (cert "ca.pem") :data (format nil "STATS~%"))))
         (when (>= received total)
           (as:close-socket s)
           (as:exit-event-loop)))
       :ca-file (cert "ca.pem")
       :data (format nil "BULK ~d~%" mib)))
    (report (and (= received total) (zerop bad)
                 (<= max-queue (* 2 1024 1024))
                 (< (- max-rss before) (max (* 32 1024) (floor total 2048))))
            "client that stops reading"
            "server writing ~d MiB to a client that stopped reading for 3 s: its write ~
             queue held ~d bytes (high-water 1 MiB), RSS ~d KiB before, ~d KiB while ~
             blocked; then ~d bytes arrived, ~d wrong"
            mib max-queue before max-rss received bad)))

(defun s-client (args &optional (input ""))
  "Runs openssl s_client ARGS against the server; returns its output."
  (uiop:run-program (list* "sh" "-c"
                           (format nil "(~a) | timeout 10 openssl s_client -connect 127.0.0.1:~a ~{~a ~} 2>&1"
                                   (if (string= input "") "sleep 1" input) *port* args)
                           nil)
                    :output :string :ignore-error-status t))

(defun phase-old-protocols ()
  (dolist (v '("-tls1" "-tls1_1"))
    (let ((out (s-client (list v "-cipher" "'DEFAULT:@SECLEVEL=0'"))))
      (report (and (search "alert protocol version" out)
                   (search "Cipher is (NONE)" out))
              (format nil "~a refused" v)
              "openssl s_client ~a: ~a" v
              (if (search "protocol version" out) "alert protocol version" out))))
  (let ((reply nil) (closed nil))
    (with-loop (10)
      (as:tcp-connect "127.0.0.1" *port* (lambda (s d) (declare (ignore s)) (setf reply d))
                      :data (sslv3-client-hello)
                      :event-cb (lambda (e) (declare (ignore e)) (setf closed t))))
    (report (and closed (or (null reply) (= 21 (aref reply 0))))
            "SSLv3 refused"
            "an SSLv3 ClientHello got ~a and the connection was closed"
            (if reply (format nil "an alert record (~{~d~^ ~})" (coerce (subseq reply 0 (min 7 (length reply))) 'list))
                "no reply"))))

(defun phase-renegotiation ()
  (let ((out (s-client (list "-tls1_2" "-CAfile" (cert "ca.pem"))
                       "echo hello; sleep 0.5; echo R; sleep 1")))
    (report (and (search "RENEGOTIATING" out) (search "no renegotiation" out))
            "renegotiation refused"
            "a TLS 1.2 client asking to renegotiate got: ~a"
            (if (search "no renegotiation" out) "no_renegotiation" out))))

(defun phase-leaks (random-closes)
  "Sequential connections (connect, handshake, 1 KiB echo, close); with
RANDOM-CLOSES, each ends at a random point, by either side (seeded)."
  (let* ((n (size 3000 100000))
         (sample-every (floor n 10))
         (state (sb-ext:seed-random-state (+ *seed* (if random-closes 7 0))))
         (payload (make-array 1024 :element-type '(unsigned-byte 8) :initial-element 120))
         (samples '()) (done 0) (errors 0) (modes (make-array 5 :initial-element 0)))
    (with-loop (3600)
      (labels ((next ()
                 (when (zerop (mod done sample-every))
                   (push (rss-kb) samples))
                 (if (>= done n)
                     (as:exit-event-loop)
                     (one (if random-closes (random 5 state) 0))))
               (finish (s)
                 (unless (as:socket-closed-p s) (as:close-socket s))
                 (incf done)
                 (as:delay #'next))
               (one (mode)
                 (incf (aref modes mode))
                 (let ((got 0) (finished nil))
                   (flet ((end (s) (unless finished (setf finished t) (finish s))))
                     (let ((s (as-ssl:tcp-ssl-connect
                               "127.0.0.1" *port*
                               (lambda (s d)
                                 (incf got (length d))
                                 (case mode
                                   (3 (as:close-socket s :force t) (end s))
                                   (t (when (>= got 1024) (end s)))))
                               :ca-file (cert "ca.pem")
                               :data (if (= mode 4) (format nil "CLOSE~%") payload)
                               :connect-cb (lambda (s) (when (= mode 2) (end s)))
                               :event-cb (lambda (e)
                                           (unless (or (typep e 'as:socket-eof)
                                                       (= mode 3) (= mode 1))
                                             (incf errors))
                                           (end (as:socket e))))))
                       (when (= mode 1) (end s)))))))
        (next)))
    (sleep 1)
    (let* ((samples (reverse samples))
           (warm (or (second samples) (first samples)))
           (last (car (last samples)))
           (growth (if (plusp warm) (/ (- last warm) warm 0.01) 0))
           (stats (server-stats))
           (st (getf stats :stats)))
      ;; The STATS request is itself one TLS connection.
      (report (and (= done n) (zerop errors) (< growth 5)
                   (= 1 (getf st :tls-connections))
                   (= 1 (getf st :incoming-tcp-connections))
                   (= 1 (getf stats :tls-live)))
              (if random-closes "leaks, random closes" "leaks, sequential connections")
              "~d connections~a: ~d errors; server RSS every ~d: ~{~d~^ ~} KiB; ~
               growth after warm-up ~,2f%; then ~d TLS filter(s) live (the stats request), ~
               server stats ~a"
              done (if random-closes
                       (format nil " (normal, closed before the handshake, after it, ~
                                   without close_notify, by the server: ~{~d~^/~})"
                               (coerce modes 'list))
                       "")
              errors sample-every samples growth (getf stats :tls-live)
              (let ((*print-pretty* nil)) (prin1-to-string st))))))

(defun phase-concurrency ()
  "N idle TLS connections held at once (opened 500 at a time, each batch
once the previous one is up), then every one echoes."
  (let* ((n (size 1000 10000))
         (sockets '()) (established 0) (echoed 0) (errors 0)
         (before (rss-kb)) (held nil))
    (with-loop (600)
      (labels ((done-p () (>= (+ echoed errors) n))
               (echo-all ()
                 (setf held (rss-kb))
                 (dolist (s sockets)
                   (unless (as:socket-closed-p s)
                     (as:write-socket-data s "z"
                                           :read-cb (lambda (s d) (declare (ignore d))
                                                      (as:close-socket s)
                                                      (incf echoed)
                                                      (when (done-p) (as:exit-event-loop)))))))
               (open-batch (k)
                 (let* ((count (min 500 (- n k)))
                        (pending count))
                   (flet ((settled ()
                            (when (zerop (decf pending))
                              (if (< (+ k count) n)
                                  (open-batch (+ k count))
                                  (as:with-delay (3) (echo-all))))))
                     (dotimes (i count)
                       (let ((counted nil))
                         (push (as-ssl:tcp-ssl-connect
                                "127.0.0.1" *port*
                                (lambda (s d) (declare (ignore s d))
                                  (unless counted
                                    (setf counted t)
                                    (incf established)
                                    (settled)))
                                :ca-file (cert "ca.pem") :data "x"
                                :event-cb (lambda (e) (declare (ignore e))
                                            (incf errors)
                                            (unless counted
                                              (setf counted t)
                                              (settled))
                                            (when (done-p) (as:exit-event-loop))))
                               sockets)))))))
        (open-batch 0)))
    (report (and (= established n) (= echoed n) (zerop errors))
            "concurrent idle connections"
            "~d TLS connections held open: ~d established, ~d echoed at the end, ~d errors; ~
             server RSS ~d KiB before, ~d KiB holding them: ~,1f KiB per connection"
            n established echoed errors before held
            (if held (/ (- held before) n) 0))))

;;;# Two workers on one port, one killed

(defstruct (wconn (:conc-name wc-))
  kind                 ; :long (ping-pong until the end) or :short (WHO, close)
  socket started
  (text "") pid        ; the WHO answer so far, then the worker's pid
  (bytes 0)            ; echoed bytes after the WHO answer
  (echoes 0) (echoes-after-kill 0)
  ended event          ; when it ended, and the event that ended it (nil:
                       ; we closed it)
  ok)                  ; a short one that got its answer

(defparameter *kilobyte*
  (let ((v (make-array 1024 :element-type '(unsigned-byte 8))))
    (dotimes (i 1024 v) (setf (aref v i) (mod i 251)))))

(defun clean-end-p (event)
  "An end a client can act on: EOF, reset, any TCP or TLS error."
  (typep event '(or as:tcp-eof as:tcp-error as-ssl:tcp-ssl-error)))

(defun worker-load (port a-pid)
  "Load on the two workers of PORT: 16 long connections ping-pong 1 KiB,
and a short one (WHO, close) starts every 50 ms; once every long one has
its answer and an echo (or after 5 s), worker A-PID is killed with SIGKILL;
6 s later the load stops.  Returns (values connections kill-time)."
  (let ((conns '()) (killed-at nil) (stopping nil) (deadline-passed nil))
    (with-loop (60)
      (labels ((conn (kind)
                 (let ((c (make-wconn :kind kind :started (now))))
                   (push c conns)
                   (setf (wc-socket c)
                         (as-ssl:tcp-ssl-connect
                          "127.0.0.1" port (lambda (s d) (on-read c s d))
                          :ca-file (cert "ca.pem") :data (format nil "WHO~%")
                          :event-cb (lambda (e)
                                      (unless (wc-ended c)
                                        (setf (wc-ended c) (now) (wc-event c) e)))))))
               (end (c)
                 (unless (wc-ended c)
                   (setf (wc-ended c) (now))
                   (as:close-socket (wc-socket c))))
               (on-read (c s d)
                 (if (null (wc-pid c))
                     (progn
                       (setf (wc-text c) (concatenate 'string (wc-text c)
                                                      (babel:octets-to-string d)))
                       (when (find #\Newline (wc-text c))
                         (setf (wc-pid c) (parse-integer (wc-text c) :junk-allowed t))
                         (if (eq (wc-kind c) :short)
                             (progn (setf (wc-ok c) t) (end c))
                             (as:write-socket-data s *kilobyte*))))
                     (multiple-value-bind (echoes rest)
                         (floor (incf (wc-bytes c) (length d)) 1024)
                       (when (> echoes (wc-echoes c))
                         (incf (wc-echoes-after-kill c)
                               (if killed-at (- echoes (wc-echoes c)) 0))
                         (setf (wc-echoes c) echoes)
                         (when (and (zerop rest) (not stopping))
                           (as:write-socket-data s *kilobyte*))))))
               (kill-a ()
                 (unless killed-at
                   (setf killed-at (now))
                   (sb-posix:kill a-pid sb-posix:sigkill)
                   (as:with-delay (6) (stop))))
               (stop ()
                 (setf stopping t)
                 (dolist (c conns)
                   (when (eq (wc-kind c) :long) (end c)))
                 (as:with-interval (0.1)
                   (when (or deadline-passed (every #'wc-ended conns))
                     (as:exit-event-loop)))
                 (as:with-delay (20) (setf deadline-passed t))))
        (dotimes (i 16) (conn :long))
        (as:with-interval (0.05)
          (unless stopping (conn :short)))
        (as:with-interval (0.1)
          (when (every (lambda (c) (or (not (eq (wc-kind c) :long)) (plusp (wc-echoes c))))
                       conns)
            (kill-a)))
        (as:with-delay (5) (kill-a))))
    (values conns killed-at)))

(defun phase-worker-killed ()
  "Two worker processes share a port (:reuse-port t); one is killed with
SIGKILL mid-load: its clients get a clean error (no hang), the other keeps
serving its connections and every new one."
  (multiple-value-bind (a a-pid port) (launch-server :reuse-port 0)
    (multiple-value-bind (b b-pid) (launch-server :reuse-port port)
      (unwind-protect
           (multiple-value-bind (conns killed-at) (worker-load port a-pid)
             (let* ((longs (remove :short conns :key #'wc-kind))
                    (on-a (remove a-pid longs :key #'wc-pid :test-not #'eql))
                    (on-b (remove b-pid longs :key #'wc-pid :test-not #'eql))
                    (after (remove-if (lambda (c) (or (eq (wc-kind c) :long)
                                                      (< (wc-started c) (+ killed-at 0.5))))
                                      conns))
                    (around (remove-if (lambda (c) (or (eq (wc-kind c) :long)
                                                       (>= (wc-started c) (+ killed-at 0.5))
                                                       (wc-ok c)))
                                       conns))
                    (a-delays (mapcar (lambda (c) (- (wc-ended c) killed-at))
                                      (remove nil on-a :key #'wc-ended)))
                    (kinds (let ((h '()))
                             (dolist (c on-a h)
                               (let ((k (if (wc-event c) (type-of (wc-event c)) :none)))
                                 (incf (getf h k 0)))))))
               (report (and on-a on-b killed-at
                            (every (lambda (c) (and (wc-ended c) (clean-end-p (wc-event c))))
                                   on-a)
                            (< (reduce #'max a-delays :initial-value 0) 10)
                            (every (lambda (c) (and (null (wc-event c))
                                                    (plusp (wc-echoes-after-kill c))))
                                   on-b)
                            (>= (length after) 20)
                            (every (lambda (c) (and (wc-ok c) (eql (wc-pid c) b-pid))) after)
                            (every (lambda (c) (and (wc-ended c) (clean-end-p (wc-event c))))
                                   around)
                            (every #'wc-ended conns)
                            (uiop:process-alive-p b))
                       "reuse-port worker killed"
                       "workers ~d and ~d on port ~d, ~d SIGKILLed under load: its ~d ~
                        connections each got a clean error (~{~(~a~) ~d~^, ~}) at most ~
                        ~,2fs after the kill; the other's ~d connections echoed on (~d ~
                        echoes after the kill, no error); ~d new connections after it, ~
                        ~d served by the survivor; ~d short connection(s) around the kill ~
                        failed, each with a clean error; ~d connection(s) never ended"
                       a-pid b-pid port a-pid (length on-a) kinds
                       (reduce #'max a-delays :initial-value 0)
                       (length on-b) (reduce #'+ on-b :key #'wc-echoes-after-kill)
                       (length after)
                       (count-if (lambda (c) (and (wc-ok c) (eql (wc-pid c) b-pid))) after)
                       (length around)
                       (count nil conns :key #'wc-ended))))
        (dolist (p (list a b))
          (when (uiop:process-alive-p p) (uiop:terminate-process p :urgent t))
          (uiop:wait-process p))))))

;;;# The soak: 4 loops on 4 threads of one process

(defun words (line) (uiop:split-string line :separator '(#\Space)))

(defun flat (object)
  "OBJECT printed on one line (nil for nil)."
  (and object (let ((*print-pretty* nil)) (prin1-to-string object))))

(defun phase-soak ()
  "Runs t/stress/soak.lisp and checks what it reports: traffic on every
loop without an unexpected event, RSS flat after the warm-up (the last
sample at most 1.2 times the first sample after it, plus 16 MiB), and the
descriptors bounded under load and back at the baseline once drained."
  (let* ((seconds (size 40 600)) (interval (size 5 60)) (warm-up (size 10 120))
         (p (uiop:launch-program
             (list "env" (format nil "CASL_STRESS_CERTS=~a" *certs*)
                   (format nil "CASL_SOAK_SECONDS=~d" seconds)
                   (format nil "CASL_SOAK_INTERVAL=~d" interval)
                   (format nil "CASL_STRESS_SEED=~d" *seed*)
                   "sbcl" "--noinform" "--non-interactive" "--load" "t/stress/soak.lisp")
             :output :stream :error-output nil))
         (baseline nil) (samples '()) (drained nil) (result nil))
    (format t "~&soak: 4 loops on 4 threads of one process for ~d s (sample every ~d s, ~
               warm-up ~d s)~%" seconds interval warm-up)
    (loop :for line := (read-line (uiop:process-info-output p) nil)
          :while line
          :do (let* ((w (words line))
                     (nums (mapcar (lambda (x) (parse-integer x :junk-allowed t)) (rest w))))
                (cond ((string= (first w) "BASELINE")
                       (setf baseline nums)
                       (format t "  baseline: RSS ~d KiB, ~d descriptors~%" (first nums) (second nums)))
                      ((member (first w) '("SAMPLE" "DRAINED") :test #'string=)
                       (destructuring-bind (s rss fds heap malloc n) nums
                         (format t "  ~:[~4ds~;drained after ~ds~]: RSS ~d KiB, ~d descriptors, ~
                                    Lisp heap ~d KiB, malloc ~d KiB, ~d connections~%"
                                 (string= (first w) "DRAINED") s rss fds heap malloc n))
                       (if (string= (first w) "DRAINED")
                           (setf drained nums)
                           (push nums samples)))
                      ((string= (first w) "RESULT")
                       (setf result (let ((*read-eval* nil))
                                      (read-from-string line t nil :start 7)))))
                (finish-output)))
    (let* ((status (uiop:wait-process p))
           (samples (reverse samples))
           (ref (find-if (lambda (x) (>= (first x) warm-up)) samples))
           (last (car (last samples)))
           (loops (and (listp result) (every #'listp result) result))
           (max-fds (reduce #'max samples :key #'third :initial-value 0)))
      (report (and (eql status 0) (= (length loops) 4)
                   (every (lambda (l) (and (plusp (getf l :connections))
                                           (zerop (getf l :unexpected))
                                           (zerop (getf l :hung))
                                           (zerop (getf l :bad-echo))
                                           (null (getf l :error))
                                           (getf l :finished)))
                          loops))
              "soak traffic"
              "~d s on 4 loops at once: ~{~d~^ + ~} connections (handshake, echo, random ~
               close), ~d unexpected client event(s)~@[ ~a~], ~d hung, ~d bad echo(es); ~
               server events ~a; exit status ~a"
              seconds (mapcar (lambda (l) (getf l :connections)) loops)
              (reduce #'+ loops :key (lambda (l) (getf l :unexpected)))
              (flat (remove nil (mapcar (lambda (l) (getf l :unexpected-first)) loops)))
              (reduce #'+ loops :key (lambda (l) (getf l :hung)))
              (reduce #'+ loops :key (lambda (l) (getf l :bad-echo)))
              (flat (let ((h '()))
                      (dolist (l loops h)
                        (loop :for (k v) :in (getf l :server-events)
                              :do (incf (getf h (intern k :keyword) 0) v)))))
              status)
      (report (and ref last (<= (second last) (+ (* 1.2 (second ref)) 16384)))
              "soak RSS flat"
              "RSS every ~d s: ~{~d~^ ~} KiB; first after the warm-up ~a KiB, last ~a KiB ~
               (bound: 1.2 x first + 16 MiB = ~a KiB)"
              interval (mapcar #'second samples) (and ref (second ref)) (and last (second last))
              (and ref (round (+ (* 1.2 (second ref)) 16384))))
      (report (and baseline drained
                   (<= max-fds (+ (second baseline) (* 2 4 4) 8))
                   (<= (third drained) (second baseline)))
              "soak descriptors"
              "baseline ~a; every ~d s under load: ~{~d~^ ~}; ~a once drained (bounds: ~
               baseline + 40 under load, baseline once drained)"
              (second baseline) interval (mapcar #'third samples) (third drained)))))

;;;# Main

(defun hostile-phases ()
  (let* ((hostile-seconds (size 40 120))
         (good (start-good-client hostile-seconds))
         (start (now)))
    (phase-silent-clients)
    (phase-truncated-hello)
    (phase-random-bytes)
    (phase-hello-then-garbage)
    (phase-rst-mid-handshake)
    (phase-rst-mid-transfer)
    (phase-never-reading-client)
    (phase-old-protocols)
    (phase-renegotiation)
    (format t "~&hostile phases took ~,1fs; waiting for the good client~%" (- (now) start))
    (let ((r (good-client-result good)))
      (report (and r (equal (getf r :errors) "0")
                   (< (parse-integer (getf r :max_us) :junk-allowed t) 1000000)
                   (> (parse-integer (getf r :count)) 0))
              "good client"
              "echoed ~a messages over ~as during the hostile phases, ~a errors~@[ (~a)~], ~
               p99 ~a us, longest round trip ~a us"
              (getf r :count) hostile-seconds (getf r :errors)
              (let ((log (uiop:read-file-string (good-client-log))))
                (and (plusp (length log))
                     (substitute #\; #\Newline (string-right-trim '(#\Newline) log))))
              (getf r :p99_us) (getf r :max_us)))))

(defparameter *phases*
  (let ((p (uiop:getenv "CASL_STRESS_PHASES")))
    (if (and p (plusp (length p)))
        (mapcar (lambda (s) (intern (string-upcase s) :keyword))
                (uiop:split-string p :separator " ,"))
        '(:hostile :leaks :random :concurrency :workers :soak)))
  "Which parts to run (CASL_STRESS_PHASES, e.g. \"concurrency\"): hostile,
leaks, random, concurrency, workers, soak.")

(defun main ()
  (setf *random-state* (sb-ext:seed-random-state *seed*))
  (start-server)
  (unwind-protect
       (progn
         (capture-client-hello)
         (when (member :hostile *phases*) (hostile-phases))
         (when (member :leaks *phases*) (phase-leaks nil))
         (when (member :random *phases*) (phase-leaks t))
         (when (member :concurrency *phases*) (phase-concurrency))
         (when (member :workers *phases*) (phase-worker-killed))
         (when (member :soak *phases*) (phase-soak))
         (report (server-alive-p) "server alive" "the server process is still running"))
    (stop-server))
  (format t "~&stress (~:[short~;full~]): ~d passed, ~d failed~%" *full*
          (count-if #'second *summary*) *failures*)
  (uiop:quit (if (zerop *failures*) 0 1)))

(main)
