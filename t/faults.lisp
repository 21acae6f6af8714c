;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; faults.lisp --- the library under resource exhaustion: a TLS server
;;;; whose process runs out of file descriptors.

(in-package #:cl-async-ssl-test)

(def-suite faults :in cl-async-ssl-test
  :description "A TLS server out of file descriptors (in a child process).")
(in-suite faults)

(defun read-file-form (path)
  "The first form in the file at PATH, read without *read-eval*; nil when
the file is missing or empty."
  (with-open-file (f path :if-does-not-exist nil)
    (and f (let ((*read-eval* nil)) (read f nil nil)))))

(defun call-with-child-sbcl (script env fn)
  "Runs `sbcl --load SCRIPT' with the environment additions ENV (strings
\"NAME=value\"), calls FN with the process, then reaps it: waits up to
60 s for it to exit by itself, kills it if it has not.  Returns (values
FN's value, the exit status or nil if it had to be killed)."
  (let ((p (uiop:launch-program
            (append (list "env") env
                    (list "sbcl" "--noinform" "--non-interactive" "--load" script))
            :output nil :error-output nil))
        (value nil) (status nil))
    (unwind-protect
         (setf value (funcall fn p))
      (loop :repeat 1200 :while (uiop:process-alive-p p) :do (sleep 0.05))
      (if (uiop:process-alive-p p)
          (progn (uiop:terminate-process p :urgent t) (uiop:wait-process p))
          (setf status (uiop:wait-process p))))
    (values value status)))

(defun drive-exhausted-server (port &key (holders 40) (total 200) (window 3))
  "TLS clients of PORT: HOLDERS connect, send \"ping\" and stay; once all
are echoed, the other TOTAL - HOLDERS arrive at once.  After WINDOW
seconds every connection with its echo sends \"pong\"; once those are
echoed too, every connection closes, and so does each later one as soon
as its first echo arrives.  Returns a plist: :echoed (connections that
got their first echo), :again (connections that echoed again while the
latecomers waited), :again-done, :events (client event types)."
  (let ((got (make-hash-table)) (sockets '()) (phase :holding) (ready 0)
        (again 0) (again-done 0) (events '()))
    (with-test-loop (:timeout 120)
      (labels ((release ()
                 (setf phase :release)
                 (dolist (s sockets)
                   (when (and (>= (gethash s got 0) 4) (not (as:socket-closed-p s)))
                     (as:close-socket s))))
               (echo-again ()
                 (setf phase :again)
                 (dolist (s sockets)
                   (when (and (>= (gethash s got 0) 4) (not (as:socket-closed-p s)))
                     (incf again)
                     (as:write-socket-data s "pong")))
                 (when (zerop again) (release)))
               (read-cb (s data)
                 (let ((before (gethash s got 0))
                       (now (incf (gethash s got 0) (length data))))
                   (when (and (< before 4) (<= 4 now))
                     (case phase
                       (:release (as:close-socket s))
                       (:holding (when (= (incf ready) holders)
                                   (setf phase :arriving)
                                   (dotimes (i (- total holders)) (connect))
                                   (as:delay #'echo-again :time window)))))
                   (when (and (< before 8) (<= 8 now) (eq phase :again)
                              (= (incf again-done) again))
                     (release))))
               (connect ()
                 (push (as-ssl:tcp-ssl-connect "127.0.0.1" port #'read-cb
                                               :ca-file (cert "ca.pem") :data "ping"
                                               :handshake-timeout nil
                                               :event-cb (lambda (e)
                                                           (push (type-of e) events)))
                       sockets)))
        (dotimes (i holders) (connect))))
    (list :echoed (loop :for v :being :the :hash-values :of got :count (>= v 4))
          :again again :again-done again-done :events events)))

(test ssl-server-out-of-descriptors
  "A TLS server whose process may open 64 descriptors: 40 clients connect
and stay, then 160 more arrive at once.  The server's event-cb gets a
SOCKET-ACCEPT-ERROR (a TCP-ERROR, EMFILE), nothing is signalled, the
server does not spin (its CPU time over 2 s of it is under half of that),
the connections it holds echo again, and once they close it accepts and
serves every waiting client."
  (let* ((dir (certs-dir))
         (port-file (format nil "~afd-limit.port" dir))
         (result-file (format nil "~afd-limit.result" dir))
         (script (namestring (merge-pathnames "fd-limit-server.lisp" (test-root)))))
    (dolist (f (list port-file result-file))
      (when (probe-file f) (delete-file f)))
    (multiple-value-bind (clients status)
        (call-with-child-sbcl
         script
         (list (format nil "CASL_FD_CERTS=~a" dir) "CASL_FD_LIMIT=64" "CASL_FD_WANT=200"
               (format nil "CASL_FD_PORT_FILE=~a" port-file)
               (format nil "CASL_FD_RESULT_FILE=~a" result-file))
         (lambda (process)
           (let ((port (loop :repeat 1200
                             :for port := (read-file-form port-file)
                             :until (or port (not (uiop:process-alive-p process)))
                             :do (sleep 0.05)
                             :finally (return port))))
             (is-true (integerp port) "the server child started and told its port")
             (and (integerp port) (drive-exhausted-server port)))))
      (let ((r (read-file-form result-file)))
        (is (eql 0 status) "the server child exited by itself, normally (status ~a)" status)
        (is-true r "the server child wrote its result")
        (when clients
          (is (= 200 (getf clients :echoed)) "every client got its echo: ~a" clients)
          (is (null (getf clients :events)) "no client saw an error: ~a"
              (remove-duplicates (getf clients :events)))
          (is (<= 40 (getf clients :again) 199)
              "the server was full, and what it held echoed again: ~a" clients)
          (is (= (getf clients :again) (getf clients :again-done))))
        (when r
          (is (= 200 (getf r :accepted)) "the server accepted every client: ~a" r)
          (is (<= 1 (getf r :accept-errors)) "the server's event-cb saw the accept error")
          (is-true (getf r :all-tcp-errors) "each is a tcp-error")
          (is (eql -24 (getf r :errcode)) "EMFILE")
          (is-true (search "too many open files" (or (getf r :message) ""))
                   "the message says what failed: ~a" (getf r :message))
          (is-false (getf r :guard-fired))
          (is (and (getf r :cpu-ms) (< (* 2 (getf r :cpu-ms)) (getf r :wall-ms)))
              "no spinning: ~a ms of CPU over ~a ms" (getf r :cpu-ms) (getf r :wall-ms)))))))
