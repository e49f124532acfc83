--[[
job_submit.lua: Slurm asks Allot whether a job's project may run, at sbatch.

slurmctld runs this inside its own process, so the question goes through
allot-slurm, a short-lived helper with a short timeout (allot-slurm's
timeout_ms, 2 s by default): a slow Allot delays one submission, never the
controller's other work for long. A refused job gets Allot's own reason and
figures on the user's terminal.

Install: copy to the folder of slurm.conf as job_submit.lua, set
JobSubmitPlugins=lua, and set the two paths below (meson install writes them).
]]

local ALLOT_SLURM = "@ALLOT_SLURM@"
local ALLOT_SLURM_CONF = "@ALLOT_SLURM_CONF@"

-- Values reach a shell: only these characters pass, anything else is refused.
local function safe(v)
  return v ~= nil and string.match(v, "^[A-Za-z0-9_.@+-]+$") ~= nil
end

-- The GPUs of a TRES string: "gres:gpu:2", "gres/gpu:a100:2", "gres/gpu=2".
local function gpus_of(tres)
  local n = 0
  if tres == nil then return 0 end
  for item in string.gmatch(tres, "[^,]+") do
    if string.match(item, "^gres[:/]gpu") then
      local c = string.match(item, "[:=](%d+)$")
      n = n + (tonumber(c) or 1)
    end
  end
  return n
end

local NO_VAL = 4294967294

function slurm_job_submit(job_desc, part_list, submit_uid)
  local account = job_desc.account
  local user = job_desc.user_name or ""
  local partition = job_desc.partition or ""
  -- No partition named: the default one, as Slurm will choose it. Several
  -- ("a,b"): the job is quoted on the first.
  if partition == "" and part_list ~= nil then
    for _, part in pairs(part_list) do
      if part.flag_default == 1 and part.name ~= nil then partition = part.name end
    end
  end
  partition = string.match(partition, "^[^,]*")
  if account == nil or account == "" then
    slurm.log_user("allot: the job names no account: submit with -A PROJECT")
    return slurm.ERROR
  end
  if not safe(account) or (user ~= "" and not safe(user)) or
     (partition ~= "" and not safe(partition)) then
    slurm.log_user("allot: account, user or partition has characters Allot does not accept")
    return slurm.ERROR
  end
  local nodes = job_desc.min_nodes
  if nodes == nil or nodes == NO_VAL or nodes == 0 then nodes = 1 end
  local gpus = gpus_of(job_desc.tres_per_job)
  if gpus == 0 then gpus = gpus_of(job_desc.tres_per_node) * nodes end
  local limit = job_desc.time_limit
  if limit == nil or limit == NO_VAL or limit >= 4294967295 then
    slurm.log_user("allot: the job has no time limit: submit with -t, Allot holds its cost for it")
    return slurm.ERROR
  end
  local cmd = string.format(
    "%s -c %s admit --account %s --user %s --partition %s --gpus %d --nodes %d --time-limit-s %d 2>/dev/null",
    ALLOT_SLURM, ALLOT_SLURM_CONF, account, user ~= "" and user or "-",
    partition ~= "" and partition or "-", gpus, nodes, limit * 60)
  local p = io.popen(cmd)
  local answer = p and p:read("*l") or nil
  if p then p:close() end
  if answer ~= nil and string.match(answer, "^ok") then
    return slurm.SUCCESS
  end
  if answer == nil then
    slurm.log_user("allot: could not ask Allot whether the job may run")
  else
    slurm.log_user("allot: %s", answer)
  end
  return slurm.ERROR
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return slurm.SUCCESS
end

return slurm.SUCCESS
