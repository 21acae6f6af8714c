;;;; lisp-client.lisp --- our TLS load client for `make bench`: drives any
;;;; TLS echo server with as-ssl:tcp-ssl-connect.
;;;;
;;;;   sbcl --script t/bench/lisp-client.lisp MODE [--option value]...
;;;;
;;;; MODE throughput: each of --conns connections streams --size byte chunks
;;;;   (at most --window bytes not yet echoed) and checks every echoed byte
;;;;   against what it sent.
;;;; MODE handshake: each of --conns connections loops: tcp-ssl-connect
;;;;   (full handshake, the server verified against --ca-file; no session
;;;;   resumption), send 1 byte, read its echo, close.
;;;;
;;;; Options: --host (127.0.0.1) --port --hostname (localhost: the name
;;;; verified) --ca-file --conns (1) --size (16384) --window (262144)
;;;; --duration (2) --warmup (1) --server-pid (adds the server's CPU use)
;;;; --ctx default|shared: default passes :ca-file to every tcp-ssl-connect
;;;; (the library's cached context); shared passes one context made with
;;;; as-ssl:make-ssl-context as :ssl-ctx.  --read-buffer fresh|reuse: the
;;;; connections' :read-buffer (default fresh: a fresh vector per read).
;;;;
;;;; Prints one line "RESULT key=value ..." with the keys tlsload uses
;;;; (mibps, hps, errors, client_cpu, server_cpu, server_mib_per_cpu_s,
;;;; server_us_per_hs, ...).  Exit status 0, or 3 when errors were counted.

(require :asdf)
(let ((root (merge-pathnames "../../" (make-pathname :name nil :type nil
                                                     :defaults *load-truename*))))
  (push (truename root) asdf:*central-registry*))
(handler-bind ((warning #'muffle-warning))
  (asdf:load-system :cl-async-ssl))

(defpackage #:cl-async-ssl-bench-client (:use #:cl))
(in-package #:cl-async-ssl-bench-client)

(deftype octets () '(simple-array (unsigned-byte 8) (*)))

;;;# Options

(defparameter *options*
  '(("--host" . "127.0.0.1") ("--port" . nil) ("--hostname" . "localhost")
    ("--ca-file" . nil) ("--conns" . "1") ("--size" . "16384")
    ("--window" . "262144") ("--duration" . "2") ("--warmup" . "1")
    ("--server-pid" . nil) ("--ctx" . "default") ("--read-buffer" . "fresh")))

(defun parse-options (args)
  (let ((values (copy-alist *options*)))
    (loop :while args
          :do (let* ((name (pop args))
                     (cell (assoc name values :test #'string=)))
                (unless (and cell args)
                  (format *error-output* "lisp-client: bad option ~a~%" name)
                  (sb-ext:exit :code 2 :abort t))
                (setf (cdr cell) (pop args))))
    (lambda (name) (cdr (assoc name values :test #'string=)))))

(defun number-option (opt name)
  (let ((*read-default-float-format* 'double-float))
    (let ((v (read-from-string (funcall opt name))))
      (check-type v real)
      v)))

;;;# CPU time of a process, from /proc (as tlsload measures it)

(defvar *clock-ticks* 100)

(defun proc-cpu-seconds (pid)
  "User + system CPU seconds of process PID (\"self\" for this one)."
  (with-open-file (in (format nil "/proc/~a/stat" pid))
    (let* ((line (read-line in))
           (fields (uiop:split-string (subseq line (1+ (position #\) line :from-end t)))
                                      :separator " ")))
      ;; after "pid (comm)" the fields are numbered from 3: state is (nth 1)
      (/ (+ (parse-integer (nth 12 fields)) (parse-integer (nth 13 fields)))
         *clock-ticks*))))

(defun host-busy-seconds ()
  "CPU seconds the whole machine was busy (/proc/stat: all but idle and
iowait), as tlsload counts them."
  (with-open-file (in "/proc/stat")
    (let ((v (mapcar #'parse-integer
                     (remove "" (rest (uiop:split-string (read-line in) :separator " "))
                             :test #'string=))))
      (/ (+ (nth 0 v) (nth 1 v) (nth 2 v) (nth 5 v) (nth 6 v) (nth 7 v))
         *clock-ticks*))))

(defun now ()
  (/ (get-internal-real-time) internal-time-units-per-second))

;;;# The byte pattern: byte I of a connection's stream is (I + seed) mod 251

(defconstant +period+ 251)

(defun make-chunks (size)
  "A vector of +PERIOD+ chunks: chunk K holds the pattern from phase K."
  (let ((chunks (make-array +period+)))
    (dotimes (k +period+ chunks)
      (let ((c (make-array size :element-type '(unsigned-byte 8))))
        (dotimes (j size)
          (setf (aref c j) (mod (+ k j) +period+)))
        (setf (aref chunks k) c)))))

(defconstant +ref-length+ (* 1024 1024))

(defvar *ref*
  (let ((ref (make-array (+ +period+ +ref-length+ 8) :element-type '(unsigned-byte 8))))
    (dotimes (i (length ref) ref)
      (setf (aref ref i) (mod i +period+))))
  "REF[I] = I mod +PERIOD+: the pattern from phase K starts at REF[K].")

(defun pattern-ok-p (data len phase)
  "True when the first LEN bytes of DATA continue the pattern at PHASE
(0..250).  Compares with libc's memcmp, as Node's client does with
Buffer.equals, so both clients pay the same for checking every byte."
  (declare (type octets data) (type fixnum len) (type (integer 0 250) phase)
           (optimize speed (safety 0)))
  (let ((ref *ref*)
        (start 0))
    (declare (type octets ref) (type fixnum len start))
    (loop
      (when (>= start len) (return t))
      (let ((n (min (- len start) +ref-length+))
            (k (mod (+ phase start) +period+)))
        (declare (type fixnum n k))
        (unless (sb-sys:with-pinned-objects (data ref)
                  (zerop (the (signed-byte 32)
                              (sb-alien:alien-funcall
                               (sb-alien:extern-alien
                                "memcmp" (function sb-alien:int sb-sys:system-area-pointer
                                                   sb-sys:system-area-pointer
                                                   sb-alien:unsigned-long))
                               (sb-sys:sap+ (sb-sys:vector-sap data) start)
                               (sb-sys:sap+ (sb-sys:vector-sap ref) k)
                               n))))
          (return nil))
        (incf start n)))))

;;;# Counters

(defvar *running* t)
(defvar *count* 0)                      ; bytes echoed, or handshakes done
(defvar *errors* 0)
(defvar *error-kinds* (make-hash-table :test 'eq))
(defvar *proto* nil)

(defun note-error (ev)
  (incf *errors*)
  (let ((n (incf (gethash (type-of ev) *error-kinds* 0))))
    (when (= n 1)
      (format *error-output* "lisp-client: ~(~a~): ~a~%" (type-of ev) ev))))

(defun note-protocol (socket)
  (unless *proto*
    (setf *proto* (list (as-ssl:ssl-socket-protocol socket)
                        (as-ssl:ssl-socket-cipher socket)))))

;;;# Throughput

(declaim (inline storage))
(defun storage (data)
  "The simple vector holding DATA's bytes (DATA itself, or the storage of
the reused vector :read-buffer :reuse gives)."
  (if (typep data 'octets) data (sb-ext:array-storage-vector data)))

(defun start-streaming (opt context-args)
  (let* ((size (number-option opt "--size"))
         (window (number-option opt "--window"))
         (chunks (make-chunks size)))
    (dotimes (id (number-option opt "--conns"))
      (let ((sent 0) (received 0)
            (seed (mod (* id 104729) +period+)))
        (declare (type fixnum sent received))
        (labels ((fill-window (socket)
                   (loop :while (and *running* (<= (+ (- sent received) size) window))
                         :do (as:write-socket-data
                              socket (svref chunks (mod (+ sent seed) +period+)))
                             (incf sent size))))
          (apply #'as-ssl:tcp-ssl-connect
                 (funcall opt "--host") (number-option opt "--port")
                 (lambda (socket data)
                   (declare (type (vector (unsigned-byte 8)) data))
                   (cond ((pattern-ok-p (storage data) (length data)
                                        (mod (+ received seed) +period+))
                          (incf received (length data))
                          (incf *count* (length data))
                          (fill-window socket))
                         (t
                          (incf *errors*)
                          (format *error-output* "lisp-client: echo mismatch at byte ~d~%"
                                  received)
                          (as:close-socket socket))))
                 :hostname (funcall opt "--hostname")
                 :connect-cb (lambda (socket)
                               (note-protocol socket)
                               (fill-window socket))
                 :event-cb (lambda (ev) (when *running* (note-error ev)))
                 context-args))))))

;;;# Handshakes

(defun start-handshakes (opt context-args)
  (let ((host (funcall opt "--host"))
        (port (number-option opt "--port"))
        (hostname (funcall opt "--hostname"))
        (byte (make-array 1 :element-type '(unsigned-byte 8) :initial-element 42)))
    (labels ((cycle ()
               (when *running*
                 (apply #'as-ssl:tcp-ssl-connect host port
                        (lambda (socket data)
                          (cond ((equalp data byte)
                                 (incf *count*)
                                 (note-protocol socket)
                                 (as:close-socket socket)
                                 (cycle))
                                (t
                                 (incf *errors*)
                                 (as:close-socket socket)
                                 (cycle))))
                        :hostname hostname :session nil :data byte
                        :event-cb (lambda (ev)
                                    (when *running*
                                      (note-error ev)
                                      (cycle)))
                        context-args))))
      (dotimes (i (number-option opt "--conns"))
        (cycle)))))

;;;# Main

(defun fmt (x) (format nil "~,1f" x))

(defun main (args)
  (let* ((mode (first args))
         (opt (parse-options (rest args)))
         (ca-file (funcall opt "--ca-file"))
         (server-pid (funcall opt "--server-pid"))
         (duration (number-option opt "--duration"))
         (warmup (number-option opt "--warmup"))
         (conns (number-option opt "--conns"))
         t0 t1 c0 c1 cpu0 cpu1 scpu0 scpu1 h0 h1)
    (unless (member mode '("throughput" "handshake") :test #'equal)
      (format *error-output* "usage: lisp-client.lisp throughput|handshake --port P --ca-file F ...~%")
      (sb-ext:exit :code 2 :abort t))
    (as:with-event-loop ()
      (let ((context-args
              (list* :read-buffer (if (string= (funcall opt "--read-buffer") "reuse")
                                      :reuse
                                      :fresh)
                     (if (string= (funcall opt "--ctx") "shared")
                         (list :ssl-ctx (as-ssl:make-ssl-context :ca-file ca-file))
                         (list :ca-file ca-file)))))
        (if (string= mode "throughput")
            (start-streaming opt context-args)
            (start-handshakes opt context-args))
        (as:with-delay (warmup)
          (setf t0 (now) c0 *count* cpu0 (proc-cpu-seconds "self") h0 (host-busy-seconds)
                scpu0 (and server-pid (proc-cpu-seconds server-pid)))
          (as:with-delay (duration)
            (setf t1 (now) c1 *count* cpu1 (proc-cpu-seconds "self") h1 (host-busy-seconds)
                  scpu1 (and server-pid (proc-cpu-seconds server-pid))
                  *running* nil)
            (as:exit-event-loop)))))
    (let* ((wall (- t1 t0))
           (done (- c1 c0))
           (rate (/ done wall))
           (client-cpu (/ (- cpu1 cpu0) wall))
           (server-cpu (and server-pid (/ (- scpu1 scpu0) wall)))
           (host-cpu (/ (- h1 h0) wall))
           (other-cpu (- host-cpu client-cpu (or server-cpu 0)))
           (common (format nil "RESULT mode=~a client=lisp transport=tls proto=~a cipher=~a conns=~d threads=1 read_buffer=~a"
                           mode (or (first *proto*) "none") (or (second *proto*) "none") conns
                           (funcall opt "--read-buffer"))))
      (if (string= mode "throughput")
          (let ((mibps (/ rate 1048576)))
            (format t "~a size=~a duration=~,2f bytes=~d mibps=~a errors=~d client_cpu=~,2f~@[ server_cpu=~,2f~] host_cpu=~,2f other_cpu=~,2f client_mib_per_cpu_s=~a~@[ server_mib_per_cpu_s=~a~]~%"
                    common (funcall opt "--size") wall done (fmt mibps) *errors* client-cpu server-cpu host-cpu other-cpu
                    (fmt (if (plusp client-cpu) (/ mibps client-cpu) 0))
                    (and server-cpu (plusp server-cpu) (fmt (/ mibps server-cpu)))))
          (format t "~a ctx=~a duration=~,2f handshakes=~d hps=~a errors=~d client_cpu=~,2f~@[ server_cpu=~,2f~] host_cpu=~,2f other_cpu=~,2f client_us_per_hs=~a~@[ server_us_per_hs=~a~]~%"
                  common (funcall opt "--ctx") wall done (fmt rate) *errors* client-cpu server-cpu host-cpu other-cpu
                  (fmt (if (plusp rate) (* 1d6 (/ client-cpu rate)) 0))
                  (and server-cpu (plusp rate) (fmt (* 1d6 (/ server-cpu rate))))))
      (finish-output)
      (sb-ext:exit :code (if (plusp *errors*) 3 0) :abort t))))

(main (rest sb-ext:*posix-argv*))
