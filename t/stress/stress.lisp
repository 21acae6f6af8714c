;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; stress.lisp --- hostile peers, leaks and concurrency against a default
;;;; tcp-ssl-server running in its own process (t/stress/stress-server.lisp).
;;;;
;;;; Run by t/stress/run-stress.sh (make stress).  CASL_STRESS_SIZE is
;;;; "full" (the issue's counts) or "short" (CI).  Every phase prints PASS
;;;; or FAIL with its figures; the exit status is 0 only if all passed.
;;;; A good client (tlsload, ping-pong over one connection) runs during
;;;; the hostile phases and must see no error and no round trip over 1 s.

(require :asdf)
(push (uiop:getcwd) asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-stress (:use #:cl))
(in-package #:cl-async-ssl-stress)

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

(defun start-server ()
  (let ((port-file (format nil "/tmp/casl-stress-port-~a" (random 1000000 (make-random-state t)))))
    (setf *server*
          (uiop:launch-program
           (list "env" (format nil "CASL_STRESS_CERTS=~a" *certs*)
                 (format nil "CASL_STRESS_PORT_FILE=~a" port-file)
                 (format nil "CASL_STRESS_HANDSHAKE_TIMEOUT=~a" *handshake-timeout*)
                 "sbcl" "--noinform" "--non-interactive" "--load"
                 "t/stress/stress-server.lisp")
           :output "/tmp/casl-stress-server.log" :if-output-exists :supersede
           :error-output :output))
    (loop :repeat 600
          :until (and (probe-file port-file)
                      (with-open-file (f port-file) (read-line f nil)))
          :do (sleep 0.1))
    (setf *port* (with-open-file (f port-file) (parse-integer (read-line f))))
    (delete-file port-file)
    (setf *server-pid* (uiop:process-info-pid *server*))
    (format t "~&server pid ~a on port ~a~%" *server-pid* *port*)))

(defun stop-server ()
  (when (and *server* (uiop:process-alive-p *server*))
    (uiop:terminate-process *server* :urgent t)
    (uiop:wait-process *server*)))

(defun server-alive-p () (uiop:process-alive-p *server*))

(defun rss-kb ()
  "The server's resident set size in KiB."
  (with-open-file (f (format nil "/proc/~a/status" *server-pid*))
    (loop :for line := (read-line f nil)
          :while line
          :when (and (> (length line) 6) (string= "VmRSS:" line :end2 6))
            :return (parse-integer line :start 6 :junk-allowed t))))

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

(defun set-rst-on-close (socket)
  "Makes closing SOCKET send a TCP RST (SO_LINGER with a zero timeout)."
  (let ((fd (cl-async-ffi:tcp-fd (as:socket-c socket))))
    (cffi:with-foreign-object (l :int 2)
      (setf (cffi:mem-aref l :int 0) 1 (cffi:mem-aref l :int 1) 0)
      (cffi:foreign-funcall "setsockopt" :int fd :int 1 :int 13 :pointer l :int 8 :int))))

(defun rst (socket)
  (unless (as:socket-closed-p socket)
    (when (as:socket-c socket) (set-rst-on-close socket))
    (as:close-socket socket :force t)))

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
   :output :stream :error-output nil))

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
              "echoed ~a messages over ~as during the hostile phases, ~a errors, ~
               p99 ~a us, longest round trip ~a us"
              (getf r :count) hostile-seconds (getf r :errors)
              (getf r :p99_us) (getf r :max_us)))))

(defparameter *phases*
  (let ((p (uiop:getenv "CASL_STRESS_PHASES")))
    (if (and p (plusp (length p)))
        (mapcar (lambda (s) (intern (string-upcase s) :keyword))
                (uiop:split-string p :separator " ,"))
        '(:hostile :leaks :random :concurrency)))
  "Which parts to run (CASL_STRESS_PHASES, e.g. \"concurrency\"): hostile,
leaks, random, concurrency.")

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
         (report (server-alive-p) "server alive" "the server process is still running"))
    (stop-server))
  (format t "~&stress (~:[short~;full~]): ~d passed, ~d failed~%" *full*
          (count-if #'second *summary*) *failures*)
  (uiop:quit (if (zerop *failures*) 0 1)))

(main)
