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
