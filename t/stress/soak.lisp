;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; soak.lisp --- the soak of make stress, run as a child process by
;;;; t/stress/stress.lisp: 4 event loops on 4 threads of this one process,
;;;; each with a TLS server on one shared port (SO_REUSEPORT, shared ticket
;;;; keys) and clients of that port making handshakes, echoes and random
;;;; closes, for CASL_SOAK_SECONDS.  Prints one line each (read by the
;;;; driver):
;;;;   BASELINE <rss-kib> <fds>     servers listening, no client yet
;;;;   SAMPLE <s> <rss-kib> <fds> <heap-kib> <malloc-kib> <connections>
;;;;                                every CASL_SOAK_INTERVAL seconds
;;;;   DRAINED <s> <rss-kib> <fds> <heap-kib> <malloc-kib> <connections>
;;;;                                the clients stopped and every connection
;;;;                                ended: descriptors back at the baseline
;;;;                                (or 30 s passed)
;;;;   RESULT <plist>               per loop: connections by way of ending,
;;;;                                unexpected events, server events, ...
;;;; Descriptors are counted in /proc/self/fd (the count includes the one
;;;; reading it, as the baseline's does).

(require :asdf)
(require :sb-posix)
(push (uiop:getcwd) asdf:*central-registry*)
(asdf:load-system :cl-async-ssl)

(defpackage #:cl-async-ssl-soak (:use #:cl))
(in-package #:cl-async-ssl-soak)
(load (merge-pathnames "common.lisp" *load-truename*))

(defparameter *certs* (uiop:getenv "CASL_STRESS_CERTS"))
(defparameter *seconds* (parse-integer (uiop:getenv "CASL_SOAK_SECONDS")))
(defparameter *interval* (parse-integer (uiop:getenv "CASL_SOAK_INTERVAL")))
(defparameter *seed* (parse-integer (or (uiop:getenv "CASL_STRESS_SEED") "20261129")))
(defparameter *loops* 4)
(defparameter *per-loop* 4 "Client connections each loop keeps going at once.")
(defparameter *pace* 0.02 "Seconds between two new connections of a loop, at least.")
(defparameter *connection-deadline* 30
  "Seconds a connection may take before it counts as hung (and is closed).")
(defparameter *modes*
  #(:echo :echo :echo :after-handshake :before-handshake :force-mid-echo
    :server-closes :rst-mid-echo)
  "How a connection ends, drawn at random: the client closes after the
whole echo, right after the handshake, before it, without close_notify
after the first echoed bytes, or with a TCP RST then; or the server closes
it (the client sends CLOSE).")
(defparameter *pattern*
  (let ((v (make-array 16384 :element-type '(unsigned-byte 8))))
    (dotimes (i (length v) v) (setf (aref v i) (mod (* i 7) 251))))
  "An echo sends the first 1 to 16384 bytes of this.")

(defstruct (soak-loop (:conc-name sl-))
  index random-state
  (go nil) (stopping nil) (ready nil) (finished nil) (error nil)
  (active 0) (done 0)
  (modes (make-hash-table))          ; mode -> connections
  (unexpected '()) (unexpected-count 0)
  (hung 0) (bad-echo 0)
  (server-events (make-hash-table :test 'equal))
  (stop nil))                        ; notifier that ends the loop

(defun cert (name) (format nil "~a/~a" *certs* name))

(defun now () (/ (get-internal-real-time) internal-time-units-per-second))

(defun server-read (socket data)
  "Echoes, except that a read starting with CLOSE closes the connection."
  (if (and (>= (length data) 5)
           (every (lambda (b c) (= b (char-code c))) (subseq data 0 5) "CLOSE"))
      (as:close-socket socket)
      (as:write-socket-data socket data)))

(defun note-unexpected (l mode what)
  (incf (sl-unexpected-count l))
  (when (< (length (sl-unexpected l)) 20)
    (push (list mode what) (sl-unexpected l))))

(defun start-connection (l port)
  "One client connection of loop L, ended in a way drawn at random."
  (let* ((state (sl-random-state l))
         (mode (aref *modes* (random (length *modes*) state)))
         (n (1+ (random (length *pattern*) state)))
         (got 0) (finished nil) (socket nil) (watchdog nil))
    (incf (sl-active l))
    (incf (gethash mode (sl-modes l) 0))
    (labels ((finish (&optional closer)
               (unless finished
                 (setf finished t)
                 (when watchdog (as:free-event watchdog))
                 (when closer (funcall closer))
                 (decf (sl-active l))
                 (incf (sl-done l))))
             (read-cb (s data)
               (unless finished
                 (when (or (> (+ got (length data)) n)
                           (mismatch data *pattern* :start2 got
                                                    :end2 (+ got (length data))))
                   (incf (sl-bad-echo l)))
                 (incf got (length data))
                 (case mode
                   (:force-mid-echo (finish (lambda () (as:close-socket s :force t))))
                   (:rst-mid-echo (finish (lambda () (rst s))))
                   (t (when (>= got n) (finish (lambda () (as:close-socket s))))))))
             (event-cb (e)
               (unless (and (eq mode :server-closes) (typep e 'as:socket-eof))
                 (note-unexpected l mode (type-of e)))
               (finish)))
      (setf socket
            (as-ssl:tcp-ssl-connect
             "127.0.0.1" port #'read-cb
             :ca-file (cert "ca.pem")
             :data (if (eq mode :server-closes)
                       (format nil "CLOSE~%")
                       (subseq *pattern* 0 n))
             :connect-cb (lambda (s)
                           (when (eq mode :after-handshake)
                             (finish (lambda () (as:close-socket s)))))
             :event-cb #'event-cb))
      (setf watchdog (as:delay (lambda ()
                                 (setf watchdog nil)
                                 (unless finished
                                   (incf (sl-hung l))
                                   (finish (lambda () (as:close-socket socket :force t)))))
                               :time *connection-deadline*))
      (when (eq mode :before-handshake)
        (finish (lambda () (as:close-socket socket)))))))

(defun run-loop (l port-box keys)
  "The thread of loop L: its server on the shared port (the first loop
picks it, into PORT-BOX), and a ticker starting client connections while
L is told to go and not yet to stop."
  (handler-case
      (as:with-event-loop ()
        (let* ((server (as-ssl:tcp-ssl-server
                        "127.0.0.1" (or (car port-box) 0) #'server-read
                        :reuse-port t :ticket-keys keys :backlog 1024
                        :certificate (cert "server-chain.pem") :key (cert "server.key")
                        :event-cb (lambda (e)
                                    (incf (gethash (string (type-of e))
                                                   (sl-server-events l) 0)))))
               (ticker nil))
          (unless (car port-box)
            (setf (car port-box) (as:tcp-server-port server)))
          (setf ticker (as:interval
                        (lambda ()
                          (when (and (sl-go l) (not (sl-stopping l))
                                     (< (sl-active l) *per-loop*))
                            (start-connection l (car port-box))))
                        :time *pace*)
                (sl-stop l) (as:make-notifier (lambda ()
                                                (as:remove-interval ticker)
                                                (as:close-tcp-server server)))
                (sl-ready l) t)))
    (error (e) (setf (sl-error l) (princ-to-string e))))
  (setf (sl-finished l) t))

(defun wait-until (seconds test)
  "Polls TEST every 0.1 s for up to SECONDS; its last value."
  (loop :with end := (+ (now) seconds)
        :for v := (funcall test)
        :until (or v (> (now) end))
        :do (sleep 0.1)
        :finally (return v)))

(defun sample (tag start ls)
  (format t "~a ~d ~d ~d ~d ~d ~d~%" tag (round (- (now) start)) (rss-kib) (fd-count)
          (floor (sb-kernel:dynamic-usage) 1024) (floor (malloc-in-use) 1024)
          (reduce #'+ ls :key #'sl-done))
  (finish-output))

(defun loop-result (l)
  (flet ((table (h) (let ((r '())) (maphash (lambda (k v) (push (list k v) r)) h) r)))
    (list :loop (sl-index l) :connections (sl-done l) :modes (table (sl-modes l))
          :unexpected (sl-unexpected-count l) :unexpected-first (reverse (sl-unexpected l))
          :hung (sl-hung l) :bad-echo (sl-bad-echo l)
          :server-events (table (sl-server-events l))
          :error (sl-error l) :finished (sl-finished l))))

(defun main ()
  (exit-when-orphaned)
  (sb-thread:make-thread (lambda ()            ; a soak that hangs ends anyway
                           (sleep (+ *seconds* 180))
                           (format t "RESULT (:watchdog t)~%")
                           (finish-output)
                           (sb-ext:exit :code 3 :abort t))
                         :name "soak watchdog")
  (let* ((state (sb-ext:seed-random-state *seed*))
         (keys (let ((k (make-array 80 :element-type '(unsigned-byte 8))))
                 (dotimes (i 80 k) (setf (aref k i) (random 256 state)))))
         (port-box (list nil))
         (ls (loop :for i :below *loops*
                   :collect (make-soak-loop :index i
                                            :random-state (sb-ext:seed-random-state (+ *seed* i)))))
         (threads '()))
    (dolist (l ls)                      ; one at a time: the first picks the port
      (push (sb-thread:make-thread #'run-loop :arguments (list l port-box keys)
                                              :name (format nil "soak loop ~d" (sl-index l)))
            threads)
      (wait-until 30 (lambda () (or (sl-ready l) (sl-finished l)))))
    (format t "BASELINE ~d ~d~%" (rss-kib) (fd-count))
    (finish-output)
    (let ((baseline (fd-count)) (start (now)))
      (dolist (l ls) (setf (sl-go l) t))
      (loop :for next :from *interval* :by *interval*
            :while (<= next *seconds*)
            :do (sleep (max 0 (- (+ start next) (now))))
                (sample "SAMPLE" start ls))
      (dolist (l ls) (setf (sl-stopping l) t))
      (wait-until 60 (lambda () (every (lambda (l) (zerop (sl-active l))) ls)))
      (wait-until 30 (lambda () (<= (fd-count) baseline)))
      (sample "DRAINED" start ls))
    (dolist (l ls)
      (when (sl-stop l) (as:trigger-notifier (sl-stop l))))
    (dolist (th threads) (sb-thread:join-thread th :default nil :timeout 60))
    (let ((*print-pretty* nil))
      (format t "RESULT ~s~%" (mapcar #'loop-result ls)))
    (finish-output)))

(main)
