;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; process.lisp --- child processes: stdio pipes, streams, files and
;;;; descriptors, exit, kill, failures, reaping.

(in-package #:cl-async-ssl-test)

(def-suite processes :in cl-async-core :description "Child processes.")
(in-suite processes)

(defun open-fd-count ()
  "Open descriptors of this process."
  (length (directory "/proc/self/fd/*" :resolve-symlinks nil)))

(defun my-children ()
  "Process ids (zombies included) whose parent is this process."
  (let ((me (sb-unix:unix-getpid)))
    (loop :for dir :in (directory "/proc/*/" :resolve-symlinks nil)
          :for stat := (and (every #'digit-char-p (car (last (pathname-directory dir))))
                            (ignore-errors
                        (with-open-file (s (merge-pathnames "stat" dir))
                          (read-line s))))
          :for rparen := (and stat (position #\) stat :from-end t))
          :for fields := (and rparen (uiop:split-string
                                      (string-trim " " (subseq stat (1+ rparen)))
                                      :separator " "))
          :when (and fields (eql me (parse-integer (second fields) :junk-allowed t)))
            :collect (parse-integer stat :junk-allowed t))))

(defun octets-append (a b)
  (concatenate '(vector (unsigned-byte 8)) a b))

(test spawn-simple
  "Upstream's test: touch creates the file; exit-cb gets (process 0 0)."
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "blabla")) (process nil) (exits '()))
      (with-test-loop ()
        (setf process (as:spawn "touch" (list path)
                                :exit-cb (lambda (p status signal)
                                           (is-true (probe-file path))
                                           (push (list p status signal) exits)))))
      (is (equal (list (list process 0 0)) exits))
      (is (integerp (as:process-pid process))))))

(defun redirect (program args &key (input '(:pipe :data "hello")) output error-output
                                   (write "--42--") (stream nil))
  "Runs PROGRAM with :data \"hello\" on its stdin, then a write of WRITE,
then closes stdin; returns what came back and the exit list."
  (let ((bytes (make-array 0 :element-type '(unsigned-byte 8)))
        (exits '()) process in out err)
    (flet ((collect (pipe data)
             (declare (ignore pipe))
             (if (streamp data)
                 (let ((buf (make-array 128 :element-type '(unsigned-byte 8))))
                   (loop :for n := (read-sequence buf data)
                         :while (plusp n)
                         :do (setf bytes (octets-append bytes (subseq buf 0 n)))))
                 (setf bytes (octets-append bytes data)))))
      (with-test-loop ()
        (multiple-value-setq (process in out err)
          (as:spawn program args
                    :input input
                    :output (if output (append output (list :read-cb #'collect)) :ignore)
                    :error-output (if error-output
                                      (append error-output (list :read-cb #'collect))
                                      :ignore)
                    :exit-cb (lambda (p status signal)
                               (is (eq process p))
                               (push (list status signal) exits))))
        (is (eq in (as:process-input process)))
        (is (eq out (as:process-output process)))
        (is (eq err (as:process-error-output process)))
        (if stream
            (progn (write-sequence (octets write) in)
                   (close in))
            (progn (as:write-socket-data in write)
                   (as:close-socket in)))))
    (values (text bytes) exits in out err)))

(test spawn-redirect-output
  "Upstream's test: :data \"hello\" on cat's stdin pipe, a write of
\"--42--\", close: stdout reads \"hello--42--\"."
  (multiple-value-bind (got exits in out err)
      (redirect "cat" '() :output '(:pipe))
    (is (equal "hello--42--" got))
    (is (equal '((0 0)) exits))
    (is (typep in 'as:pipe))
    (is (typep out 'as:pipe))
    (is (null err))))

(test spawn-redirect-error-output
  "Upstream's test, through bash's stderr."
  (multiple-value-bind (got exits in out err)
      (redirect "bash" '("-c" "cat 1>&2") :error-output '(:pipe))
    (is (equal "hello--42--" got))
    (is (equal '((0 0)) exits))
    (is (typep in 'as:pipe))
    (is (null out))
    (is (typep err 'as:pipe))))

(test spawn-redirect-stream
  "Upstream's test with :stream: write-sequence and close on the input
stream, read-sequence on the output one."
  (multiple-value-bind (got exits in out)
      (redirect "cat" '() :input '(:stream :data "hello") :output '(:stream)
                          :stream t)
    (is (equal "hello--42--" got))
    (is (equal '((0 0)) exits))
    (is (typep in 'as:async-io-stream))
    (is (typep out 'as:async-io-stream))))

(test spawn-data-alone-is-sent
  ":data in a stdio spec is sent even when nothing else is written (the
original loses it)."
  (let ((got ""))
    (with-test-loop ()
      (multiple-value-bind (p in)
          (as:spawn "head" '("-c" "5")
                    :input '(:pipe :data "hello")
                    :output (list :pipe :read-cb (lambda (s d)
                                                   (declare (ignore s))
                                                   (setf got (concatenate 'string got (text d))))))
        (declare (ignore p))
        (is (typep in 'as:pipe))))
    (is (equal "hello" got))))

(test spawn-stdout-async-stream
  "A child's stdout read through an async stream; its end reaches the
pipe's own event-cb as a SOCKET-EOF and the pipe closes."
  (let ((got "") (events '()) (out nil))
    (with-test-loop ()
      (setf out (nth-value 2
                  (as:spawn "/bin/sh" '("-c" "printf 'line 1\\n'; sleep 0.05; printf 'line 2\\n'")
                            :output (list :stream
                                          :event-cb (lambda (e) (push e events))
                                          :read-cb (lambda (pipe stream)
                                                     (is (eq pipe (as:stream-socket stream)))
                                                     (let ((buf (make-array 64 :element-type '(unsigned-byte 8))))
                                                       (loop :for n := (read-sequence buf stream)
                                                             :while (plusp n)
                                                             :do (setf got (concatenate 'string got (text (subseq buf 0 n))))))))))))
    (is (equal (format nil "line 1~%line 2~%") got))
    (is (typep out 'as:async-io-stream))
    (is (= 1 (length events)))
    (is (typep (first events) 'as:socket-eof))
    (is (as:socket-closed-p (as:stream-socket out)))))

(test spawn-exec-failure
  "Upstream's test: a missing program signals FILESYSTEM-ENOENT and exit-cb
never runs; here also with every stdio a pipe, none left open, and a
program that is not executable gives FILESYSTEM-EACCES."
  (with-temp-dir (dir)
    (let ((exits 0) fds-before fds-after)
      (as:with-event-loop ()      ; libuv opens what it keeps per loop once
        (ignore-errors (as:spawn (concatenate 'string dir "nope") '())))
      (setf fds-before (open-fd-count))
      (signals as:filesystem-enoent
        (with-test-loop ()
          (as:spawn (concatenate 'string dir "blabla") '()
                    :exit-cb (lambda (&rest r) (declare (ignore r)) (incf exits))
                    :input :pipe :output :stream :error-output '(:pipe :data "x"))
          (as:with-delay (1) nil)))
      (signals as:filesystem-enoent
        (with-test-loop ()
          (as:spawn "casl-no-such-program-anywhere" '() :output :pipe)))
      (signals as:filesystem-eacces
        (with-test-loop ()
          (as:spawn (touch (concatenate 'string dir "not-executable")) '()
                    :input :pipe)))
      (setf fds-after (open-fd-count))
      (is (zerop exits))
      (is (= fds-before fds-after) "descriptors: ~a before, ~a after"
          fds-before fds-after))))

(test process-kill
  "Upstream's test: cat with an idle input pipe killed with SIGINT: exit-cb
gets (process 0 2), and the idle pipe does not keep the loop alive.
PROCESS-KILL after the exit returns nil."
  (let ((exits '()) (process nil) (after :unset))
    (with-test-loop (:timeout 5)
      (setf process (as:spawn "cat" '()
                              :input '(:pipe)
                              :exit-cb (lambda (p status signal)
                                         (push (list p status signal) exits)
                                         (setf after (as:process-kill p 15)))))
      (is-true (as:process-kill process 2)))
    (is (equal (list (list process 0 2)) exits))
    (is (null after))
    (is (null (as:process-kill process 15)))
    (signals error (as:process-kill process "TERM"))))

(test process-kill-bad-signal
  "A number that is no signal goes to process-kill's event-cb (#'error by
default, which signals it)."
  (let ((seen nil))
    (with-test-loop ()
      (let ((p (as:spawn "sleep" '("5"))))
        (signals as:event-error (as:process-kill p 12345))
        (is (null (as:process-kill p 12345 :event-cb (lambda (e) (setf seen e)))))
        (as:process-kill p as:+sigkill+)))
    (is (typep seen 'as:event-error))))

(test process-env
  "Upstream's test: :env is the whole environment (no PATH: libuv's
default search path finds bash) and :working-directory the cwd."
  (with-temp-dir (dir)
    (let ((got ""))
      (with-test-loop ()
        (as:spawn "bash" '("-c" "echo -n $ENV $PWD")
                  :output (list :pipe :read-cb (lambda (p d)
                                                 (declare (ignore p))
                                                 (setf got (concatenate 'string got (text d)))))
                  :env '(("ENV" . "$HOME/.shinit"))
                  :working-directory dir))
      (is (equal (format nil "$HOME/.shinit ~a" (string-right-trim "/" dir)) got)))))

(test spawn-files-and-fds-as-stdio
  "A file name as :input and :output (created or truncated), a pathname,
and a descriptor number of ours as :output."
  (with-temp-dir (dir)
    (let ((in (concatenate 'string dir "in.txt"))
          (out (concatenate 'string dir "out.txt"))
          (fd-out (concatenate 'string dir "fd.txt"))
          (exits '()))
      (with-open-file (s in :direction :output) (write-string "from a file" s))
      (with-open-file (s out :direction :output) (write-string "old contents, longer" s))
      (let ((fd (cffi:foreign-funcall "open" :string fd-out :int #o1101 ; O_WRONLY|O_CREAT|O_TRUNC
                                             :int #o600 :int)))
        (is (>= fd 0))
        (unwind-protect
             (with-test-loop ()
               (as:spawn "cat" '() :input in :output (pathname out)
                                   :exit-cb (lambda (p s g) (declare (ignore p)) (push (list s g) exits)))
               (as:spawn "/bin/sh" '("-c" "echo via fd; echo err >&2")
                         :output fd :error-output :ignore
                         :exit-cb (lambda (p s g) (declare (ignore p)) (push (list s g) exits))))
          (cffi:foreign-funcall "close" :int fd :int)))
      (is (equal '((0 0) (0 0)) exits))
      (is (equal "from a file" (uiop:read-file-string out)))
      (is (equal (format nil "via fd~%") (uiop:read-file-string fd-out))))))

(test spawn-bad-arguments
  "Bad arguments signal an error naming them before anything is made: no
pipe is left open."
  (let ((before nil))
    (with-test-loop ()
      (setf before (open-fd-count))
      (signals error (as:spawn "cat" '() :output '(:pipe :reed-cb nil)))
      (signals error (as:spawn "cat" '() :output '(:pipe :read-cb)))
      (signals error (as:spawn "cat" '() :input :pipe :output nil))
      (signals error (as:spawn "cat" '() :output :file))
      (signals error (as:spawn "cat" '() :input '(:pipe :data 42)))
      (signals error (as:spawn "cat" '("ok" 7)))
      (signals error (as:spawn "cat" '() :env '(("A" . 1))))
      (signals error (as:spawn 'cat '()))
      (signals as:filesystem-enoent
        (as:spawn "cat" '() :input :pipe :output :pipe
                            :working-directory "/nonexistent/casl-dir/"))
      (signals as:filesystem-enoent
        (as:spawn "cat" '() :input "/nonexistent/casl-input" :output :pipe))
      (is (= before (open-fd-count))))
    (handler-case (with-test-loop () (as:spawn "cat" '() :output '(:pipe :reed-cb nil)))
      (error (e) (is (search ":REED-CB" (princ-to-string e)))))))

(test exit-cb-errors-go-to-event-cb
  "With :catch-app-errors t, an error in exit-cb goes to spawn's event-cb."
  (let ((seen nil))
    (with-test-loop (:catch-app-errors t)
      (as:spawn "true" '() :exit-cb (lambda (&rest r) (declare (ignore r)) (error "boom"))
                           :event-cb (lambda (e) (setf seen e))))
    (is (typep seen 'simple-error))))

(test spawn-200-processes
  "200 children, 20 at a time, each with a stdout pipe: every one is
reaped, and no descriptor or child process is left afterwards."
  (let ((fds (open-fd-count)) (children (my-children))
        (exits 0) (bytes 0))
    (with-test-loop (:timeout 60)
      (let ((started 0))
        (labels ((start ()
                   (when (< started 200)
                     (incf started)
                     (as:spawn "/bin/echo" (list "hi")
                               :output (list :pipe :read-cb (lambda (p d)
                                                              (declare (ignore p))
                                                              (incf bytes (length d))))
                               :exit-cb (lambda (p s g)
                                          (declare (ignore p))
                                          (when (and (zerop s) (zerop g)) (incf exits))
                                          (start))))))
          (dotimes (i 20) (start)))))
    (is (= 200 exits))
    (is (= (* 3 200) bytes))
    (is (= fds (open-fd-count)) "descriptors: ~a before, ~a after" fds (open-fd-count))
    (is (equal children (my-children)) "children left: ~a" (my-children))))

(test child-running-at-loop-end-is-reaped
  "A child still running when the loop ends is reaped once it exits (no
zombie); its exit-cb never runs."
  (let ((pid nil) (exits 0))
    (with-test-loop ()
      (setf pid (as:process-pid (as:spawn "sleep" '("0.3")
                                          :exit-cb (lambda (&rest r) (declare (ignore r))
                                                     (incf exits)))))
      (as:exit-event-loop))
    (is (member pid (my-children)))
    (loop :repeat 100 :while (member pid (my-children)) :do (sleep 0.05))
    (is (not (member pid (my-children))) "~a is still a child (a zombie?)" pid)
    (is (zerop exits))))
