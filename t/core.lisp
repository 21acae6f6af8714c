;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; core.lisp --- the event loop, error handling and upstream's helpers.

(in-package #:cl-async-ssl-test)

(def-suite core :in cl-async-core :description "The event loop.")
(in-suite core)

(test start-fn-runs-deferred
  "start-fn runs on the loop's first pass from a timer, like upstream (its
own timer is still registered while it runs)."
  (let ((ran nil) (stats nil))
    (as:with-event-loop ()
      (setf ran t
            stats (as:stats)))
    (is-true ran)
    (is (= 1 (getf stats :data-registry-count)))))

(test data-and-fn-pointers
  "Upstream's registry counts: three delays inside start-fn."
  (let ((stats nil))
    (as:with-event-loop ()
      (as:delay (lambda ()) :time 0.01)
      (as:delay (lambda ()) :time 0.01)
      (as:delay (lambda ()) :time 0.01)
      (setf stats (as:stats)))
    (is (= 4 (getf stats :data-registry-count)))
    (is (= 5 (getf stats :fn-registry-count)))))

(test exit-event-loop-stops-pending-delays
  (let ((fired nil))
    (as:with-event-loop ()
      (as:delay (lambda () (setf fired t)) :time 1)
      (as:exit-event-loop))
    (is-false fired)))

(test exit-callbacks-run-last-added-first
  (let ((order '()))
    (as:with-event-loop ()
      (as:add-event-loop-exit-callback (lambda () (push 1 order)))
      (as:add-event-loop-exit-callback (lambda () (push 2 order)))
      (cl-async::add-event-loop-exit-callback (lambda () (push 3 order))))
    ;; run 3, then 2, then 1: pushed in that order
    (is (equal '(1 2 3) order))))

(test exit-callbacks-run-when-an-error-escapes
  (let ((ran nil))
    (handler-case
        (as:with-event-loop ()
          (as:add-event-loop-exit-callback (lambda () (setf ran t)))
          (as:delay (lambda () (error "boom"))))
      (simple-error () nil))
    (is-true ran)))

(define-condition test-boom (error) ((n :initarg :n :reader boom-n)))

(test errors-escape-unchanged-200-times
  "With :catch-app-errors nil an error in a callback leaves
with-event-loop unchanged; the loop is torn down each time and the next
loop works."
  (let ((caught 0))
    (dotimes (i 200)
      (let ((c (make-condition 'test-boom :n i)))
        (handler-case
            (as:with-event-loop ()
              (as:delay (lambda () (error c)))
              (as:delay (lambda () (error "second callback must not run"))
                        :time 0.5))
          (test-boom (e)
            (when (eq e c) (incf caught))))))
    (is (= 200 caught))
    (let ((ok nil))
      (as:with-event-loop ()
        (as:with-delay (0.01) (setf ok t)))
      (is-true ok))))

(test error-escapes-from-socket-callbacks-and-loop-recovers
  "An error escaping a read-cb (with sockets open) tears the loop down;
the next loop serves connections again."
  (dotimes (round 3)
    (signals test-boom
      (as:with-event-loop ()
        (let ((server (as:tcp-server "127.0.0.1" 0
                                     (lambda (s d) (declare (ignore s d))
                                       (error 'test-boom :n round)))))
          (as:tcp-connect "127.0.0.1" (as:tcp-server-port server) nil
                          :data "x")))))
  (let ((got nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d) (as:write-socket-data s d)))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d)
                          (setf got (text d))
                          (as:close-socket s)
                          (as:close-tcp-server server))
                        :data "again")))
    (is (equal "again" got))))

(test catch-app-errors-sends-to-event-cb
  "With :catch-app-errors t the error goes to the event-cb of the
operation, and the loop goes on."
  (let ((seen nil) (after nil))
    (with-test-loop (:catch-app-errors t)
      (as:delay (lambda () (error "in delay"))
                :event-cb (lambda (e) (setf seen (princ-to-string e))))
      (as:delay (lambda () (setf after t)) :time 0.05))
    (is (equal "in delay" seen))
    (is-true after)))

(test catch-app-errors-function
  "A function as :catch-app-errors gets errors with no event-cb."
  (let ((seen nil))
    (as:with-event-loop (:catch-app-errors (lambda (e) (setf seen e)))
      (as:delay (lambda () (error "no event-cb here"))))
    (is (typep seen 'simple-error))))

(test catch-app-errors-socket-event-cb
  "An error in a read-cb reaches that socket's event-cb."
  (let ((seen nil))
    (with-test-loop (:catch-app-errors t)
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d) (as:write-socket-data s d)))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d)
                          (declare (ignore d))
                          (as:close-socket s)
                          (as:close-tcp-server server)
                          (error 'test-boom :n 7))
                        :event-cb (lambda (e) (setf seen e))
                        :data "hi")))
    (is (typep seen 'test-boom))))

(test continue-restart-skips-the-callback
  "Without catch-app-errors, the CONTINUE restart skips the rest of the
callback and the loop goes on."
  (let ((rest-ran nil) (later nil))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (invoke-restart 'continue))))
      (as:with-event-loop ()
        (as:delay (lambda ()
                    (error "skip me")
                    (setf rest-ran t)))
        (as:delay (lambda () (setf later t)) :time 0.02)))
    (is-false rest-ran)
    (is-true later)))

(test callback-restarts-are-offered
  (let ((restarts nil))
    (handler-bind ((error (lambda (e)
                            (setf restarts (mapcar #'restart-name
                                                   (compute-restarts e)))
                            (invoke-restart 'cl-async-util:abort-callback))))
      (as:with-event-loop ()
        (as:delay (lambda () (error "look at the restarts")))))
    (is (member 'continue restarts))
    (is (member 'cl-async-util:abort-callback restarts))
    (is (member 'cl-async-util:exit-event-loop restarts))
    (is (member 'cl-async-util:continue-event-loop restarts))))

(test exit-event-loop-restart-stops-the-loop
  (let ((later nil))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (invoke-restart 'cl-async-util:exit-event-loop))))
      (as:with-event-loop ()
        (as:delay (lambda () (error "stop")))
        (as:delay (lambda () (setf later t)) :time 0.2)))
    (is-false later)))

(test loops-do-not-nest
  (let ((err nil))
    (as:with-event-loop ()
      (handler-case (as:with-event-loop () nil)
        (error (e) (setf err e))))
    (is (search "already started" (princ-to-string err)))))

(test no-loop-gives-a-clear-error
  (let ((msg (handler-case (progn (as:delay (lambda ())) nil)
               (error (e) (princ-to-string e)))))
    (is (search "No event loop" msg))))

(test loops-in-two-threads
  "Each thread runs its own loop."
  (let* ((results (make-array 2 :initial-element nil))
         (threads (loop :for i :below 2
                        :collect (let ((i i))
                                   (bt:make-thread
                                    (lambda ()
                                      (as:with-event-loop ()
                                        (as:with-delay (0.05)
                                          (setf (aref results i) i)))))))))
    (mapc #'bt:join-thread threads)
    (is (equalp #(0 1) results))))

(test stats-plist
  (let ((stats nil))
    (as:with-event-loop ()
      (setf stats (as:stats)))
    (dolist (key '(:open-dns-queries :fn-registry-count :data-registry-count
                   :incoming-tcp-connections :outgoing-tcp-connections))
      (is (integerp (getf stats key)) "missing ~s" key))))

(test dump-event-loop-status-lists-handles
  (let ((out (with-output-to-string (*standard-output*)
               (as:with-event-loop ()
                 (as:delay (lambda ()) :time 0.01)
                 (as:dump-event-loop-status)))))
    (is (search "handle: timer" out))))

;;;# Upstream's utilities (test/util.lisp of cl-async uses them)

(test ip-address-predicates
  (dolist (a '("127.0.0.1" "0.0.0.0" "255.255.255.255" "8.8.8.8"))
    (is-true (cl-async-util:ipv4-address-p a) "~a" a))
  (dolist (a '("127.0.4." "80.80.80.257" "" "1.2.3.4.5" "localhost"))
    (is-false (cl-async-util:ipv4-address-p a) "~a" a))
  (dolist (a '("2001:0db8:85a3:0000:0000:8a2e:0370:7334" "::1" "fe80::" "2001::"
               "::ffff:192.168.1.1" "fe80::1%lo"))
    (is-true (cl-async-util:ipv6-address-p a) "~a" a))
  (dolist (a '("hai::" "ge80::" "12345::" "1:2:3:4:5:6:7:8:9" "1::2::3" ""))
    (is-false (cl-async-util:ipv6-address-p a) "~a" a)))

(test pointer-callbacks-and-data
  (as:with-event-loop ()
    (let ((p (cl-async-util:create-data-pointer))
          (before (getf (as:stats) :fn-registry-count)))
      (is (eql (cl-async-util:make-pointer-eql-able p)
               (cl-async-util:make-pointer-eql-able p)))
      (cl-async-util:save-callbacks p (list :read-cb #'identity))
      (is (eq #'identity (getf (cl-async-util:get-callbacks p) :read-cb)))
      (cl-async-util:attach-data-to-pointer p :some-data)
      (is (eq :some-data (cl-async-util:deref-data-from-pointer p)))
      (cl-async-util:free-pointer-data p)
      (is (null (cl-async-util:get-callbacks p)))
      (is (null (cl-async-util:deref-data-from-pointer p)))
      (is (= before (getf (as:stats) :fn-registry-count))))))

(test bytes-converts
  (is (equalp #(104 105) (as:bytes "hi")))
  (is (equalp #(1 2 3) (as:bytes #(1 2 3))))
  (is (typep (as:bytes (list-to-vector '(1 2))) '(vector (unsigned-byte 8)))))

(defun list-to-vector (list) (coerce list 'vector))

(test condition-aliases-are-true-aliases
  "A handler for the tcp-* name matches what cl-async makes, and the other
way round."
  (is (eq (find-class 'as:tcp-eof) (find-class 'as:socket-eof)))
  (is (eq (find-class 'as:socket-closed) (find-class 'as:streamish-closed)))
  (is (typep (make-condition 'as:socket-refused) 'as:tcp-refused))
  (is (typep (make-condition 'as:tcp-timeout) 'as:socket-timeout))
  (is (typep (make-condition 'as:socket-eof) 'as:tcp-error))
  (is (eq :ok (handler-case (error 'as:socket-reset) (as:tcp-reset () :ok))))
  (is (eq :ok (handler-case (error 'as:tcp-eof) (as:socket-eof () :ok)))))

(test upstream-symbols-read
  "Every symbol of upstream's cl-async export list reads (the parts outside
the TCP subset too), so upstream programs load."
  (dolist (name '("SPAWN" "PIPE-CONNECT" "SIGNAL-HANDLER" "IDLE" "POLL" "FS-WATCH"
                  "+SIGINT+" "MKDTEMP" "*SEND-ERRORS-TO-EVENTCB*" "FILESYSTEM-ENOENT"
                  "INIT-TCP-SOCKET" "SOCKET-SOCKET" "SOCKET-ACCEPT-ERROR-TCP-SERVER"))
    (is (eq :external (nth-value 1 (find-symbol name :cl-async))) "~a" name))
  (is (= 2 as:+sigint+)))
