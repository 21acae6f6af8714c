;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; util.lisp --- helpers for the suites: bounded loops, summaries.

(in-package #:cl-async-ssl-test)

(def-suite cl-async-ssl-test
  :description "Every suite: the core's (CL-ASYNC-CORE) and the TLS ones,
which the system cl-async-ssl/test adds.")

(def-suite cl-async-core :in cl-async-ssl-test
  :description "The suites of the system cl-async (cl-async/test): no TLS.")

(defvar *test-timeout* 20
  "Seconds a test loop may run before it is stopped and the test fails.")

(defmacro with-test-loop ((&key (timeout '*test-timeout*) catch-app-errors)
                          &body body)
  "Runs BODY in a fresh event loop that is stopped, failing the test, if it
is still running after TIMEOUT seconds (a hung test is a failing test).
The guard timer does not keep the loop alive."
  (let ((timed-out (gensym "TIMED-OUT")))
    `(let ((,timed-out nil))
       (as:with-event-loop (:catch-app-errors ,catch-app-errors)
         (as:unref (as:delay (lambda ()
                               (setf ,timed-out t)
                               (as:exit-event-loop))
                             :time ,timeout))
         ,@body)
       (is (not ,timed-out) "the event loop was still running after ~a s" ,timeout))))

(defun octets (string)
  (babel:string-to-octets string :encoding :utf-8))

(defun text (octets)
  (babel:octets-to-string octets :encoding :utf-8))

(defun concat-octets (list)
  "Concatenates a list of octet vectors (in order)."
  (let ((out (make-array (reduce #'+ list :key #'length)
                         :element-type '(unsigned-byte 8)))
        (pos 0))
    (dolist (v list out)
      (replace out v :start1 pos)
      (incf pos (length v)))))

(defun random-octets (n &optional (seed 42))
  (let ((state (sb-ext:seed-random-state seed))
        (v (make-array n :element-type '(unsigned-byte 8))))
    (dotimes (i n v)
      (setf (aref v i) (random 256 state)))))

(defun free-port ()
  "A TCP port that was free a moment ago (for tests that need a closed port)."
  (let ((port nil))
    (as:with-event-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 nil)))
        (setf port (as:tcp-server-port server))
        (as:close-tcp-server server)))
    port))

(defun shutdown-write (fd)
  "Half-closes the socket FD (shutdown(2) with SHUT_WR)."
  (cffi:foreign-funcall "shutdown" :int fd :int 1 :int))

(defun call-with-temp-dir (fn)
  "Calls FN with the name (ending in /) of a fresh temporary directory,
removed afterwards."
  (let ((dir (uiop:run-program '("mktemp" "-d" "/tmp/casl-t-XXXXXX")
                               :output '(:string :stripped t))))
    (unwind-protect (funcall fn (concatenate 'string dir "/"))
      (uiop:delete-directory-tree (uiop:ensure-directory-pathname dir)
                                  :validate (lambda (p)
                                              (search "/tmp/casl-t-" (namestring p)))
                                  :if-does-not-exist :ignore))))

(defmacro with-temp-dir ((dir) &body body)
  "Runs BODY with DIR bound to the name (ending in /) of a fresh temporary
directory, removed afterwards."
  `(call-with-temp-dir (lambda (,dir) ,@body)))

;;;# Running and summarising

(defun test-outcomes (results)
  "Groups FiveAM RESULTS by test: a list of (name . passed-p)."
  (let ((table (make-hash-table :test 'eq))
        (order '()))
    (dolist (r results)
      (let* ((case (ignore-errors (fiveam::test-case r)))
             (name (if case (fiveam::name case) :unknown))
             (ok (typep r 'fiveam::test-passed)))
        (multiple-value-bind (old found) (gethash name table)
          (unless found (push name order))
          (setf (gethash name table) (if found (and old ok) ok)))))
    (mapcar (lambda (n) (cons n (gethash n table))) (nreverse order))))

(defun run-suites (&optional (suite 'cl-async-ssl-test))
  "Runs SUITE, prints FiveAM's report and one line \"lisp: N passed, M
failed\" (counting tests); returns (values passed failed)."
  (let* ((results (let ((*print-pretty* t)) (run suite)))
         (outcomes (test-outcomes results))
         (passed (count-if #'cdr outcomes))
         (failed (count-if-not #'cdr outcomes)))
    (explain! results)
    (dolist (o outcomes)
      (unless (cdr o) (format t "~&FAILED: ~a~%" (car o))))
    (format t "~&lisp: ~d passed, ~d failed~%" passed failed)
    (values passed failed)))

(defun run-all-tests ()
  "Runs every suite loaded (what (asdf:test-system :cl-async-ssl) does)."
  (run-suites 'cl-async-ssl-test))

(defun run-core-tests ()
  "Runs the suites of the cl-async core (what (asdf:test-system :cl-async)
does)."
  (run-suites 'cl-async-core))
