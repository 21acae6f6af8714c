;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; interrupts.lisp --- asynchronous interrupts while the loop is busy:
;;;; they are handled between C calls, never inside one, so unwinding
;;;; from them leaves no lock held and no libuv state half-updated.

(in-package #:cl-async-ssl-test)

(def-suite interrupts :in cl-async-ssl-test
  :description "INTERRUPT-THREAD, WITH-TIMEOUT and SIGTERM on a busy loop.")
(in-suite interrupts)

(defun busy-tls-loop ()
  "A loop that keeps a TLS server and 4 clients ping-ponging until it is
interrupted (it never ends by itself)."
  (as:with-event-loop ()
    (let ((server (ssl-echo-server)))
      (dotimes (i 4)
        (as-ssl:tcp-ssl-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (as:write-socket-data s d))
                                :ca-file (cert "ca.pem")
                                :data (make-string 2000 :initial-element #\p))))))

(test interrupt-thread-unwinds-a-busy-loop
  "INTERRUPT-THREAD with a THROW, 20 times at random moments: the loop is
torn down each time, nothing is left, and nothing deadlocks."
  (let ((state (sb-ext:seed-random-state 11))
        (finished 0))
    (certs-dir)
    (dotimes (round 20)
      (let* ((started nil)
             (thread (bt:make-thread
                      (lambda ()
                        (catch :interrupted
                          (setf started t)
                          (busy-tls-loop))
                        :unwound))))
        (loop :repeat 200 :until started :do (sleep 0.01))
        (sleep (/ (+ 20 (random 80 state)) 1000))
        (sb-thread:interrupt-thread thread (lambda () (throw :interrupted nil)))
        (when (eq :unwound (sb-thread:join-thread thread :default :timeout
                                                         :timeout 10))
          (incf finished))))
    (is (= 20 finished) "every interrupted loop unwound within 10 s")
    (is (= 0 (cl-async-ffi:tls-live-count)))
    (is (equal "ping" (getf (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")))
                            :reply))
        "the next loop works")))

(test with-timeout-around-a-busy-loop
  (certs-dir)
  (dotimes (i 5)
    (is (eq :timed-out
            (handler-case (sb-ext:with-timeout 0.3 (busy-tls-loop))
              (sb-ext:timeout () :timed-out)))))
  (is (= 0 (cl-async-ffi:tls-live-count)))
  (is (equal "ping" (getf (ssl-round-trip :client-args (list :ca-file (cert "ca.pem")))
                          :reply))))

(test sigterm-stops-a-loaded-server-process
  "SIGTERM to a process whose loop is busy with TLS traffic: it exits
promptly (SBCL's handler runs between C calls)."
  (let* ((script (format nil "~asigterm.lisp" (certs-dir)))
         (ready (format nil "~asigterm-ready" (certs-dir))))
    (with-open-file (s script :direction :output :if-exists :supersede)
      (format s "(require :asdf)~%(push ~s asdf:*central-registry*)~%~
                 (asdf:load-system :cl-async-ssl)~%~
                 (as:with-event-loop ()~%  ~
                 (let ((server (as-ssl:tcp-ssl-server \"127.0.0.1\" 0 ~
                 (lambda (s d) (as:write-socket-data s d)) :certificate ~s :key ~s)))~%    ~
                 (dotimes (i 4) (as-ssl:tcp-ssl-connect \"127.0.0.1\" (as:tcp-server-port server) ~
                 (lambda (s d) (as:write-socket-data s d)) :ca-file ~s ~
                 :data (make-string 4000 :initial-element #\\x)))~%    ~
                 (as:with-delay (0.5) (with-open-file (f ~s :direction :output ~
                 :if-exists :supersede) (write-line \"ready\" f)))))~%"
              (namestring (asdf:system-source-directory :cl-async-ssl))
              (cert "server-chain.pem") (cert "server.key") (cert "ca.pem") ready))
    (when (probe-file ready) (delete-file ready))
    (let ((p (uiop:launch-program (list "sbcl" "--noinform" "--non-interactive"
                                        "--load" script)
                                  :output nil :error-output nil)))
      (loop :repeat 600 :until (probe-file ready) :do (sleep 0.05))
      (is-true (probe-file ready) "the server started")
      (sleep 0.5)
      (dotimes (i 3)                    ; SIGTERM a few times, busy each time
        (uiop:run-program (list "kill" "-TERM" (princ-to-string (uiop:process-info-pid p)))
                          :ignore-error-status t)
        (loop :repeat 40 :while (uiop:process-alive-p p) :do (sleep 0.05)))
      (let ((exited (not (uiop:process-alive-p p))))
        (is-true exited "the process exited within a few seconds of SIGTERM")
        (unless exited
          (uiop:terminate-process p :urgent t))
        (uiop:wait-process p)))))

(test gc-in-callbacks-while-signals-arrive
  "A loop thread echoing 64 KiB chunks (so callbacks allocate and collect
garbage all the time) while another thread sends it INTERRUPT-THREADs and
a timer signals it every millisecond: the process survives and the data
keeps flowing.  (Collecting garbage with interrupts deferred but allowed
made SBCL die with \"pending handler changed in gc\".)  Runs in a child
process, so a crash fails this test only."
  (let* ((script (format nil "~agc-signals.lisp" (certs-dir)))
         (out (format nil "~agc-signals.out" (certs-dir))))
    (with-open-file (s script :direction :output :if-exists :supersede)
      (format s "(require :asdf)~%(push ~s asdf:*central-registry*)~%~
                 (asdf:load-system :cl-async-ssl)~%~
                 (defvar *n* 0)~%~
                 (defun busy ()~%  ~
                   (as:with-event-loop ()~%    ~
                     (let ((server (as-ssl:tcp-ssl-server \"127.0.0.1\" 0 ~
                       (lambda (s d) (as:write-socket-data s d)) :certificate ~s :key ~s)))~%      ~
                       (dotimes (i 2) (as-ssl:tcp-ssl-connect \"127.0.0.1\" (as:tcp-server-port server) ~
                         (lambda (s d) (incf *n* (length d)) (as:write-socket-data s d)) :ca-file ~s ~
                         :data (make-array 65536 :element-type '(unsigned-byte 8) :initial-element 7))))))~%~
                 (let* ((th (sb-thread:make-thread (lambda () (catch :stop (busy)))))~%       ~
                        (timer (sb-ext:make-timer (lambda () nil) :thread th))~%       ~
                        (end (+ (get-internal-real-time) (* 3 internal-time-units-per-second))))~%  ~
                   (sleep 0.3)~%  ~
                   (sb-ext:schedule-timer timer 0.001 :repeat-interval 0.001)~%  ~
                   (loop :while (< (get-internal-real-time) end)~%        ~
                         :do (sb-thread:interrupt-thread th (lambda () nil)) (sleep 0.0005))~%  ~
                   (sb-ext:unschedule-timer timer)~%  ~
                   (sb-thread:interrupt-thread th (lambda () (throw :stop nil)))~%  ~
                   (sb-thread:join-thread th :default nil :timeout 10)~%  ~
                   (with-open-file (f ~s :direction :output :if-exists :supersede)~%    ~
                     (format f \"~~d~~%\" *n*)))~%"
              (namestring (asdf:system-source-directory :cl-async-ssl))
              (cert "server-chain.pem") (cert "server.key") (cert "ca.pem") out))
    (when (probe-file out) (delete-file out))
    (let* ((p (uiop:launch-program (list "sbcl" "--noinform" "--non-interactive"
                                         "--load" script)
                                   :output nil :error-output nil))
           (finished (loop :repeat 600 :while (uiop:process-alive-p p)
                           :do (sleep 0.05)
                           :finally (return (not (uiop:process-alive-p p))))))
      (unless finished
        (uiop:terminate-process p :urgent t))
      (let ((status (uiop:wait-process p)))
        (is-true finished "the child finished within 30 s")
        (is (eql 0 status) "the child exited normally (status ~a)" status)
        (let ((n (and (probe-file out)
                      (with-open-file (f out) (parse-integer (read-line f) :junk-allowed t)))))
          (is (and n (> n (* 16 1024 1024)))
              "data kept flowing (~a bytes echoed)" n))))))
