;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; fd-limit-server.lisp --- a TLS echo server that runs out of file
;;;; descriptors: the child process of the FAULTS suite's test
;;;; SSL-SERVER-OUT-OF-DESCRIPTORS (t/faults.lisp).  Not part of a system.
;;;;
;;;; It loads cl-async-ssl, lowers its own descriptor limit (setrlimit) to
;;;; CASL_FD_LIMIT, listens on 127.0.0.1 (any free port), writes the port to
;;;; CASL_FD_PORT_FILE, and echoes until CASL_FD_WANT connections have
;;;; ended (or 100 s have passed).  From the first SOCKET-ACCEPT-ERROR on,
;;;; for 2 s, it measures its own CPU time (GET-INTERNAL-RUN-TIME, from
;;;; getrusage).  At the end it writes a plist to CASL_FD_RESULT_FILE.
;;;; Certificates come from CASL_FD_CERTS (a directory, with its slash).

(require :asdf)
(push (uiop:pathname-parent-directory-pathname
       (uiop:pathname-directory-pathname *load-truename*))
      asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-fd-limit (:use #:cl))
(in-package #:cl-async-ssl-fd-limit)

(defparameter *certs* (uiop:getenv "CASL_FD_CERTS"))
(defparameter *want* (parse-integer (uiop:getenv "CASL_FD_WANT")))
(defparameter *limit* (parse-integer (uiop:getenv "CASL_FD_LIMIT")))
(defparameter *window* 2 "Seconds over which the CPU time is measured.")

(defvar *accepted* 0 "Connections whose handshake completed.")
(defvar *ended* 0 "Accepted connections that ended (any event of theirs).")
(defvar *accept-errors* '() "The SOCKET-ACCEPT-ERRORs, newest first.")
(defvar *other-events* '() "Type names of the events of connections.")
(defvar *window-start* nil "(cpu . real) internal times when it started.")
(defvar *cpu-ms* nil)
(defvar *wall-ms* nil)
(defvar *guard-fired* nil)

(defun ms (internal) (round (* 1000 internal) internal-time-units-per-second))

(defun set-descriptor-limit (n)
  "setrlimit(RLIMIT_NOFILE, {N, N}); true on success."
  (cffi:with-foreign-object (rl :uint64 2)
    (setf (cffi:mem-aref rl :uint64 0) n (cffi:mem-aref rl :uint64 1) n)
    (zerop (cffi:foreign-funcall "setrlimit" :int 7 :pointer rl :int))))

(defun maybe-exit ()
  (when (and (>= *ended* *want*) *cpu-ms*)
    (as:exit-event-loop)))

(defun end-window ()
  (destructuring-bind (cpu . real) *window-start*
    (setf *cpu-ms* (ms (- (get-internal-run-time) cpu))
          *wall-ms* (ms (- (get-internal-real-time) real))))
  (maybe-exit))

(defun event-cb (event)
  (cond ((typep event 'as:socket-accept-error)
         (push event *accept-errors*)
         (unless *window-start*
           (setf *window-start* (cons (get-internal-run-time) (get-internal-real-time)))
           (as:delay #'end-window :time *window*)))
        (t
         (push (string (type-of event)) *other-events*)
         (incf *ended*)
         (maybe-exit))))

(defun result ()
  (let ((e (first *accept-errors*)))
    (list :accepted *accepted* :ended *ended*
          :accept-errors (length *accept-errors*)
          :all-tcp-errors (every (lambda (c) (typep c 'as:tcp-error)) *accept-errors*)
          :errcode (and e (as:event-errcode e))
          :message (and e (princ-to-string e))
          :other-events (remove-duplicates *other-events* :test #'string=)
          :cpu-ms *cpu-ms* :wall-ms *wall-ms* :guard-fired *guard-fired*)))

(unless (set-descriptor-limit *limit*)
  (error "setrlimit failed"))
(as:with-event-loop ()
  (as:delay (lambda () (setf *guard-fired* t) (as:exit-event-loop)) :time 100)
  (let ((server (as-ssl:tcp-ssl-server
                 "127.0.0.1" 0 (lambda (socket data) (as:write-socket-data socket data))
                 :certificate (concatenate 'string *certs* "server-chain.pem")
                 :key (concatenate 'string *certs* "server.key")
                 :backlog 512 :handshake-timeout nil
                 :connect-cb (lambda (socket) (declare (ignore socket)) (incf *accepted*))
                 :event-cb #'event-cb)))
    (with-open-file (f (uiop:getenv "CASL_FD_PORT_FILE") :direction :output
                                                          :if-exists :supersede)
      (format f "~d~%" (as:tcp-server-port server)))))
(with-open-file (f (uiop:getenv "CASL_FD_RESULT_FILE") :direction :output
                                                        :if-exists :supersede)
  (with-standard-io-syntax
    (let ((*print-readably* nil)) (prin1 (result) f))))
