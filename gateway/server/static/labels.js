// Chinese labels for wire values. Unknown values are shown as they are (as text).

export const SKILLS = { presale: '售前', aftersale: '售后', logistics: '物流' };
export const PRIORITIES = { urgent: '紧急', high: '高', normal: '普通' };
export const CHANNELS = { web: '网页', wechat: '微信', wecom: '企业微信', taobao: '淘宝', jd: '京东', douyin: '抖音', pdd: '拼多多' };
export const STATUSES = { online: '在线', away: '离开', offline: '离线' };
export const RESOLUTIONS = { resolved: '已解决', unresolved: '未解决', pending: '待跟进' };
export const CATEGORIES = { quality: '质量问题', logistics: '物流问题', usage: '使用咨询', service: '服务问题', other: '其他' };
export const CLOSE_REASONS = {
  resolved: '问题已解决', unresolved: '会话已结束', pending: '客服将按约定时间跟进，本次会话已结束', customer: '您已结束会话',
  idle: '长时间无操作，会话已结束', agent: '客服已结束会话', timeout: '会话超时结束',
};
export const UNASSIGN_REASONS = { transferred: '已转接', closed: '已结束', reassigned: '已被重新分配', timeout: '超时已收回' };
export const ERRORS = {
  bad_frame: '消息格式错误', unknown_type: '不支持的操作', too_large: '消息太长了（最多 4000 字）',
  rate_limited: '发送太频繁，请稍后再试', not_assigned: '该会话已不在您名下', not_found: '会话不存在',
  unauthorized: '没有权限', closed: '会话已结束', unavailable: '服务暂时不可用，请重试',
};

export const label = (table, value) => (value in table ? table[value] : String(value ?? ''));
export const skillLabel = (s) => label(SKILLS, s);
export const categoryLabel = (c) => label(CATEGORIES, c);
export const errorText = (frame) => ERRORS[frame.code] || frame.message || String(frame.code || '出错了');

/** A bot reason code (engine: "handoff:转人工", "urgent:投诉", "no_match" …) as Chinese text. */
export function reasonText(code) {
  const s = String(code);
  const i = s.indexOf(':');
  const [kind, arg] = i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
  switch (kind) {
    case 'handoff': return `客户要求人工（“${arg}”）`;
    case 'urgent': return `紧急（“${arg}”）`;
    case 'high': return `优先（“${arg}”）`;
    case 'order': return `订单 ${arg}`;
    case 'skill': return `${skillLabel(arg)}问题`;
    case 'near': return `相近问题 ${arg}`;
    case 'faq': return `FAQ ${arg}`;
    case 'vip': return 'VIP 客户';
    case 'no_match': return '机器人无法回答';
    case 'no_question': return '未识别出问题';
    case 'reopened': return '客户再次来访（上次未解决、待跟进或差评）';
    case 'customer asked for a person': return '客户要求人工';
    default: return s;
  }
}
